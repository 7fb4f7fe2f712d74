//! The `#[remote]` attribute of pbrs. Use it through `rpc_core::remote`; this crate is an
//! implementation detail of `rpc_core`.
//!
//! # Remote traits
//!
//! `#[remote]` goes on a trait. The trait's methods named `remote_*` can be called by peers;
//! every other method stays local and is unreachable from the network, whatever name a peer
//! sends.
//!
//! ```
//! use rpc_core::remote;
//!
//! #[remote]
//! pub trait Calculator {
//!     /// Adds two numbers; returns the sum and this worker's id.
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
//!     /// Answers when the worker is alive.
//!     async fn remote_ping(&self);
//!     /// Local only: no peer can call this.
//!     fn helper(&self) -> u32 {
//!         1
//!     }
//! }
//! # struct Worker(u32);
//! # impl Calculator for Worker {
//! #     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) { (a + b, self.0) }
//! #     async fn remote_ping(&self) {}
//! # }
//! # fn main() {}
//! ```
//!
//! A remote method must be an `async fn` taking `&self` and owned, non-generic arguments that
//! implement serde's `Serialize` and `DeserializeOwned`, and return such a value (or nothing).
//! Anything else is a compile error that points at the offending tokens and says what to
//! write instead.
//!
//! # What it generates
//!
//! For a trait `Calculator`:
//!
//! - **The trait itself**, with `Send + Sync + 'static` added to its supertraits and each
//!   `async fn remote_x(..) -> T` turned into `fn remote_x(..) -> impl Future<Output = T> + Send`.
//!   Implement it with plain `async fn`s; the futures must be `Send`, because calls from peers
//!   run on a multi-threaded runtime.
//! - **`CalculatorRef`**, a cheap, cloneable reference to a `Calculator` object, local or in a
//!   peer, with the visibility of the trait. It has one method per remote method, named
//!   without the prefix (`calculate`, `ping`), with the same arguments, returning an
//!   `rpc_core::CallFuture<T>` that resolves to `Result<T, rpc_core::CallError>`.
//!   `CalculatorRef::new(object)` and `CalculatorRef::from_arc(arc)` wrap a local
//!   implementation, and calls through such a reference run it directly, without encoding
//!   anything (PB's `LocalAsRemote`). `with_timeout(duration)` gives the same reference with
//!   a deadline on each call. It also implements `rpc_core::RemoteRef`, which is how
//!   `rpc_core` hands out references to objects that live in a peer.
//! - **Serde support for `CalculatorRef`**: a reference can be an argument or return value of
//!   a remote method, also inside a `Vec`, an `Option` or a struct, and travels *by
//!   reference*. A local object passed or returned is exported on that connection and the
//!   peer gets a reference that calls back over it; a reference sent back over the
//!   connection it came from arrives as the original object.
//! - A private dispatcher that decodes a call's arguments and runs the matching `remote_*`
//!   method. It knows only the remote methods.
//!
//! ```
//! # use rpc_core::remote;
//! # #[remote]
//! # pub trait Calculator {
//! #     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
//! #     async fn remote_ping(&self);
//! # }
//! struct Worker(u32);
//!
//! impl Calculator for Worker {
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
//!         (a + b, self.0)
//!     }
//!     async fn remote_ping(&self) {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rpc_core::CallError> {
//! // In process; `rpc_core::Server::bind(addr, calc)` would serve the same object to peers,
//! // and `client.root::<CalculatorRef>()` gets a reference to it there.
//! let calc = CalculatorRef::new(Worker(7));
//! assert_eq!(calc.calculate(1, 2).await?, (3, 7));
//! calc.ping().await?;
//! # Ok(())
//! # }
//! ```
//!
//! On the wire a method is named without its prefix (`"calculate"`) and its arguments travel
//! as one tuple (`(a, b)`), so both sides must agree on the trait's remote methods.

mod expand;
mod parse;
mod pretty;
mod validate;

use proc_macro::TokenStream;

/// Makes the `remote_*` methods of a trait callable by peers; see the [crate docs](crate).
///
/// Generates `<Trait>Ref`, a cloneable reference whose methods (the remote method names
/// without the `remote_` prefix) call the object wherever it lives.
#[proc_macro_attribute]
pub fn remote(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let input = proc_macro2::TokenStream::from(input);
    match expand(&args, input.clone()) {
        Ok(output) => output.into(),
        Err(error) => {
            // Keep the input as written, so that the only errors are ours, not a cascade of
            // "cannot find trait" errors in code that uses it.
            let mut output = error.to_compile_error();
            output.extend(input);
            output.into()
        }
    }
}

fn expand(
    args: &proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    // Report a bad attribute together with whatever is wrong with the item.
    let args_ok = validate::attribute_args(args);
    let checked = syn::parse2::<syn::Item>(input)
        .and_then(validate::target)
        .map(parse::interface)
        .and_then(|iface| validate::interface(&iface).map(|()| iface));
    match (args_ok, checked) {
        (Ok(()), Ok(iface)) => Ok(expand::expand(&iface)),
        (Err(error), Ok(_)) | (Ok(()), Err(error)) => Err(error),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            Err(error)
        }
    }
}
