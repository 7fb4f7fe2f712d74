//! The `#[remote]` attribute of pbrs, an implementation detail of `rpc-core`: depend on
//! `rpc-core` and use the attribute as `rpc_core::remote`. Its reference (the rules of a
//! remote trait, what the attribute generates, examples) is in rpc-core's docs, on
//! [`rpc_core::remote`](../rpc_core/attr.remote.html).

// Inside, the attribute reads the trait into a small model (`parse`), checks every rule with an
// error at the offending tokens (`validate`), and writes the code (`expand`).

mod expand;
mod parse;
mod pretty;
mod validate;

use proc_macro::TokenStream;

/// # Where it is defined
///
/// `#[remote]`, which makes the `remote_*` methods of a trait callable by peers, is defined in
/// `rpc-derive`, an implementation detail of `rpc-core`: depend on `rpc-core` and import the
/// attribute as `rpc_core::remote`.
//
// Shown after rpc-core's docs of its re-export, which are the reference: this paragraph ends
// that page, and is what an editor shows on hover.
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
