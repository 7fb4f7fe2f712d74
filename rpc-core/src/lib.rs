//! # rpc-core: remote objects for Rust, the Perspective Broker way
//!
//! Put [`remote`] on a trait, implement it with plain `async fn`s, make the implementation
//! the root object of a [`Server`], and call it from another process through the generated
//! `<Trait>Ref` proxy, whose methods return futures:
//!
//! ```
//! use rpc_core::{remote, Client, Server};
//!
//! #[remote]
//! pub trait Calculator {
//!     /// Adds `a` and `b`; also says which worker did it.
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
//! }
//!
//! struct Calc { id: u32 }
//!
//! impl Calculator for Calc {
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) { (a + b, self.id) }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc { id: 7 })).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run());
//!
//! let client = Client::connect(addr).await?;
//! let calc: CalculatorRef = client.root().await?;
//! assert_eq!(calc.calculate(42, 47).await?, (89, 7));
//! # Ok(()) }
//! ```
//!
//! To use it from your own crate (it is not on crates.io: depend on it by path or git), add:
//!
//! ```toml
//! [dependencies]
//! rpc-core = { path = "../pbrs/rpc-core" }  # or { git = "<the pbrs repository>" }
//! serde = { version = "1", features = ["derive"] }  # to derive Serialize/Deserialize for your types
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }  # for #[tokio::main]
//! ```
//!
//! The code `#[remote]` generates needs nothing else in your crate: it names serde and
//! rpc-core's helpers through `rpc_core` itself.
//!
//! # Remote traits
//!
//! Only methods named `remote_*` are reachable from the network, and the proxy drops the
//! prefix: `remote_calculate` is called as `calc.calculate(..)`. A remote method is an
//! `async fn` taking `&self` and up to 16 owned serde arguments, returning an owned serde
//! value (a `Result<T, E>` included) or nothing. [`remote`] has the full rules, what it
//! generates (`<Trait>Ref::new`, `from_arc`, `with_timeout`, one method per remote method),
//! and how a mistake is reported.
//!
//! # Calls, references, lifetimes
//!
//! Many calls may be in flight on one connection; answers arrive in any order. A call is a
//! [`CallFuture`], lazy like every Rust future; it resolves to the method's value or to a
//! [`CallError`]. Dropping a call's future cancels it at the callee;
//! `<Trait>Ref::with_timeout` (or [`ObjectRef::with_timeout`]) sets a deadline that travels
//! with the call. [`ObjectRef::call_remote`] is the untyped call, like PB's `callRemote`.
//!
//! Objects also travel *by reference*: a `<Trait>Ref` can be an argument or a return value,
//! both ways. A local object passed over a connection is exported on it and the peer calls it
//! back; a reference handed back to its owner arrives as the original object. An argument
//! list or a return value holding a reference is serialized twice when sent (the first time
//! up to the reference: most hold none, and those are encoded without taking any hold on
//! the connection), so its `Serialize` must write the same bytes each time and
//! pass serde's errors on rather than panic on them. A `<Trait>Ref` made with `new` calls its
//! object directly. [`Peer`] tells when a connection is lost;
//! [`ReconnectingClient`] reconnects by itself (with back-off and jitter) and fetches its root
//! again; [`blocking::Client`] serves programs without an async runtime.
//!
//! Everything a peer can make this side hold is bounded (see [`Config`]): frame length, decode
//! bytes and nesting depth, incoming calls in flight, bytes queued for the peer, objects
//! exported, time for a frame to arrive, and, over a whole [`Server`], connections and bytes
//! held. Past a bound a call gets a clear error answer, or the one connection closes with one
//! warning naming the peer; a panic anywhere closes one connection at most.
//!
//! # On a real network
//!
//! Use TLS ([`tls`]): a server presents an identity (PEM files, or a self-signed one generated
//! once and kept in a directory) and is named by its SHA-256 fingerprint; a client pins that
//! fingerprint or checks CA roots ([`Client::connect_tls`]); mutual TLS is an option.
//! [`Server::register`] gives an object a sturdy URL, `pbrs://<fingerprint>@<host>:<port>/<secret>`,
//! and [`Client::connect_url`] reaches it: the URL is the capability. [`login`] puts objects
//! behind a password (argon2): a per-user avatar, a mind to call back, a logout hook, and
//! [`Peer::caller`] to tell who calls.
//!
//! ```
//! use rpc_core::tls::{ClientTls, Identity, ServerTls};
//! # use rpc_core::{remote, Client, Server};
//! # #[remote] pub trait Calculator { async fn remote_calculate(&self, a: i64, b: i64) -> i64; }
//! # struct Calc; impl Calculator for Calc { async fn remote_calculate(&self, a: i64, b: i64) -> i64 { a + b } }
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let identity = Identity::generate(&["localhost"])?; // or Identity::load_or_generate(dir, ..)
//! let fingerprint = identity.fingerprint();
//! let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc)).await?
//!     .with_tls(ServerTls::new(identity))?;
//! let url = server.register(CalculatorRef::new(Calc))?; // pbrs://<fingerprint>@.../<secret>
//! let addr = server.local_addr().to_string();
//! tokio::spawn(server.run());
//!
//! let calc: CalculatorRef = Client::connect_url(&url.to_string()).await?;
//! assert_eq!(calc.calculate(1, 2).await?, 3);
//! let pinned = Client::connect_tls(&addr, &ClientTls::pinned(fingerprint)).await?;
//! assert_eq!(pinned.root::<CalculatorRef>().await?.calculate(2, 2).await?, 4);
//! # Ok(()) }
//! ```
//!
//! The wire format is described in [`protocol`].
//!
//! # Watching it
//!
//! Every call over a connection, made or served, is a `tracing` span (target
//! `rpc_core::call`, level DEBUG) with its method, object, peer and request id, and its outcome
//! and duration when it closes; rpc-core counts connections, calls by method and outcome, call
//! durations and bytes through the `metrics` facade. Both cost next to nothing until the
//! application installs a subscriber or a recorder: see [`telemetry`].

// Inside, the modules are layers, each using only those before it: the leaves (`error`,
// `config`, `protocol`, `codec`: bincode, framing and the depth limit; `wire_types`: what a
// remote method's types must implement; `telemetry`: spans and metric handles; `id_map`: the
// tables keyed by ids) → `io` (the outbox that batches writes, the frame
// reader with its timer and budget, the keepalive clock) → `dispatch` (running and guarding
// handlers) → `conn` (lifecycle, outgoing and incoming calls, exports, imports, the reference
// context, the frame router, the handshake) → the API (`call`, `object`, `peer`, `client`,
// `server`, `blocking`, `login`, `sturdy`; `reconnect` above `client`). `tls` sits beside the
// leaves: the connection layer and the API both use it.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

extern crate self as rpc_core;

pub mod blocking;
mod call;
mod client;
mod codec;
mod config;
mod conn;
mod dispatch;
mod error;
mod id_map;
mod io;
mod lock;
pub mod login;
mod object;
mod peer;
pub mod protocol;
pub mod reconnect;
mod serve_connection;
mod server;
mod sturdy;
pub mod telemetry;
pub mod tls;
mod wire_types;

pub use call::CallFuture;
pub use client::Client;
pub use config::Config;
pub use error::{CallError, LoginError, RemoteError, RemoteErrorKind, TimeoutKind};
pub use object::{ObjectRef, RemoteRef};
pub use peer::{Caller, DisconnectHook, Peer};
pub use reconnect::{Backoff, ConnectionState, Jitter, ReconnectOptions, ReconnectingClient};
/// Makes the `remote_*` methods of a trait callable by peers, and generates `<Trait>Ref`, the
/// reference through which they are called, wherever the object lives.
///
/// ```
/// use rpc_core::{remote, CallError, RemoteRef};
///
/// #[remote]
/// pub trait Calculator {
///     /// Adds two numbers; returns the sum and this worker's id.
///     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
///     /// Answers when the worker is alive.
///     async fn remote_ping(&self);
///     /// Local only: no peer can call this.
///     fn helper(&self) -> u32 {
///         1
///     }
/// }
///
/// struct Worker(u32);
///
/// impl Calculator for Worker {
///     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
///         (a + b, self.0)
///     }
///     async fn remote_ping(&self) {}
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), CallError> {
/// // In process. `Server::bind(addr, calc)` would serve the same object to peers, and
/// // `client.root::<CalculatorRef>()` would get a reference to it there.
/// let calc = CalculatorRef::new(Worker(7));
/// assert_eq!(calc.calculate(1, 2).await?, (3, 7));
/// calc.ping().await?;
///
/// // The same call, untyped and encoded, as a peer makes it (see "On the wire" below).
/// let sum: (i64, u32) = calc.object().call_remote("calculate", (1_i64, 2_i64)).await?;
/// assert_eq!(sum, (3, 7));
/// # Ok(())
/// # }
/// ```
///
/// # The rules of a remote trait
///
/// `#[remote]` goes on a trait, without arguments. A peer sends a method name and encoded
/// arguments and gets back the encoded return value; every rule follows from that.
///
/// - **Only methods named `remote_*` are remote.** Every other method stays local and is
///   unreachable from the network, whatever name a peer sends. A trait with methods but none
///   named `remote_*` is an error (the prefix was forgotten); a trait without methods is a
///   marker, whose reference can be passed around but has nothing to call.
/// - **A remote method is an `async fn` taking `&self`**: the object is shared, and calls
///   from peers run concurrently. Keep mutable state behind a `Mutex` or an atomic. Not
///   `&mut self`, not `self`, not `const`, `unsafe` or `extern`.
/// - **Its arguments are owned serde values**, each implementing serde's `Serialize` and
///   `Deserialize` (derive them for your types): no references, no `impl Trait`, no `Self`,
///   no generic or lifetime parameters, no `where` clause. Each argument is a plain name
///   (`point: (i64, i64)`, not a pattern). **At most 16 arguments**, the longest tuple serde
///   encodes; gather more in a struct.
/// - **It returns an owned serde value, or nothing.** A `Result<T, E>` is a value like any
///   other: the caller gets `Result<Result<T, E>, CallError>`, so application errors travel
///   as values and [`CallError`] says only whether the call itself worked.
/// - **Names**: the part after `remote_` must be a Rust method name (a keyword is fine:
///   `remote_type` becomes `r#type`), and must not be one of the names `<Trait>Ref` already
///   has: `new`, `from_arc`, `with_timeout`, `object`, `peer`, `is_local`, `same_object`,
///   `from_object`, `clone`, `clone_from`.
/// - **The trait** cannot be generic or have lifetime parameters. It may have supertraits,
///   local methods, default bodies for remote methods, docs, `#[cfg]` and `#[deprecated]` on
///   methods (a `#[cfg]` on an argument is an error: both sides must agree on the
///   arguments).
///
/// Each mistake is a compile error at the offending tokens that says what to write instead;
/// one build reports them all. A type that is not a serde type is reported at that type
/// ("`Point` cannot be an argument of a remote method: it does not implement
/// `serde::Serialize`").
///
/// Implement the trait with plain `async fn`s. Their futures must be `Send`, because calls
/// from peers run on a multi-threaded runtime: do not hold a `std::sync::MutexGuard` or an
/// `Rc` across an `.await`.
///
/// # What it generates
///
/// For a trait `Calculator`:
///
/// - **The trait itself**, with `Send + Sync + 'static` added to its supertraits and each
///   `async fn remote_x(..) -> T` turned into `fn remote_x(..) -> impl Future<Output = T> +
///   Send`, which implementations write as `async fn`.
/// - **`CalculatorRef`**, a cheap, cloneable (`Clone`, `Debug`, `Send + Sync`) reference to a
///   `Calculator` object, in this process or in a peer, with the visibility of the trait:
///   - `CalculatorRef::new(object)` wraps a local implementation, any `T: Calculator`;
///     `CalculatorRef::from_arc(arc)` one already in an `Arc`. Calls through such a reference
///     run the object directly, without encoding anything (PB's `LocalAsRemote`); serve it
///     with [`Server::bind`] or pass it to a peer to make it remote.
///   - One method per remote method, named without the prefix (`calculate`, `ping`), with the
///     same arguments, returning a [`CallFuture<T>`](CallFuture) that resolves to
///     `Result<T, CallError>`. It carries the method's docs, `#[cfg]` and `#[deprecated]`.
///   - `with_timeout(duration)`: the same reference with a deadline on each call, which
///     travels with the call so that the callee stops the work too
///     ([`CallError::Timeout`]).
///   - The [`RemoteRef`] trait: [`peer`](RemoteRef::peer) (the connection behind it, `None`
///     when local), [`is_local`](RemoteRef::is_local),
///     [`same_object`](RemoteRef::same_object), and [`object`](RemoteRef::object), the untyped
///     [`ObjectRef`] inside. [`Client::root`] and [`Client::connect_url`] hand out references
///     of any `RemoteRef` type.
/// - **Serde for `CalculatorRef`**: a reference can be an argument or a return value of a
///   remote method, also inside a `Vec`, an `Option` or a struct, and travels *by
///   reference*. A local object passed or returned is exported on that connection and the
///   peer gets a reference that calls back over it; a reference sent back over the connection
///   it came from arrives as the original object. An exported object stays exported while the
///   peer holds a reference to it.
/// - A hidden dispatcher, which decodes a call's arguments and runs the matching `remote_*`
///   method. It knows only the remote methods.
///
/// # On the wire
///
/// A method is named without its prefix (`"calculate"`) and its arguments travel as one tuple
/// (`(a, b)`), so `calc.calculate(1, 2)` is the typed form of
/// `calc.object().call_remote("calculate", (1_i64, 2_i64))` ([`ObjectRef::call_remote`], as
/// in the example above). Both sides must agree on the trait's remote methods: a name
/// the object does not have, or arguments that do not decode as its types, are answered with
/// a [`CallError::Remote`] error.
pub use rpc_derive::remote;
pub use serve_connection::{serve_connection, serve_connection_halves};
pub use server::{Server, ServerStats};
pub use sturdy::SturdyUrl;

/// What the code generated by `#[remote]` uses. Not a public API: it may change at any time.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::{Answer, Args, Dispatch, HandlerFuture, no_such_method, respond};
    pub use crate::error::RemoteError;
    pub use crate::object::deserialize_ref;
    pub use crate::wire_types::{DecodeAnswer, DecodeArgument, EncodeAnswer, EncodeArgument};
    pub use serde;
}
