//! The calls of the generated code that encode or decode the user's types, each through a
//! small generic function whose type parameters, one per argument or answer, are bound by
//! one of `rpc_core::__private`'s `EncodeArgument`, `DecodeArgument`, `EncodeAnswer` and
//! `DecodeAnswer`, and given the types the user wrote. A type that is not a serde type is
//! then reported at that type, with the message of the bound it misses ("`Point` cannot be an
//! argument of a remote method: it does not implement `serde::Serialize`"), rather than as a
//! tuple of arguments deep in the generated code.

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::{local, output};
use crate::parse::Method;

/// The encoded call of a proxy method: arguments bound by `EncodeArgument`, the answer by
/// `DecodeAnswer`.
pub(super) fn call_remote(m: &Method) -> TokenStream {
    let output = output(m);
    let call = local("__call");
    let object = local("__object");
    let method = local("__method");
    let args = local("__args");
    let params = type_params(m);
    let answer = local("__R");
    let types = m.args.iter().map(|a| &a.ty);
    let idents = m.arg_idents();
    let wire = &m.name;
    quote! {
        fn #call<
            #(#params: ::rpc_core::__private::EncodeArgument,)*
            #answer: ::rpc_core::__private::DecodeAnswer + ::core::marker::Send + 'static,
        >(
            #object: &::rpc_core::ObjectRef,
            #method: &'static str,
            #args: (#(#params,)*),
        ) -> ::rpc_core::CallFuture<#answer> {
            ::rpc_core::ObjectRef::call_static(#object, #method, #args)
        }
        #call::<#(#types,)* #output>(&self.object, #wire, (#(#idents,)*))
    }
}

/// The decoding of a call's arguments into `locals` (a statement): arguments bound by
/// `DecodeArgument`.
pub(super) fn decode_arguments(
    m: &Method,
    locals: &[Ident],
    args: &Ident,
    method: &Ident,
) -> TokenStream {
    if m.args.is_empty() {
        return quote!(#args.decode::<()>(#method)?;);
    }
    let decode = local("__decode");
    let params = type_params(m);
    let types = m.args.iter().map(|a| &a.ty);
    quote! {
        fn #decode<#(#params: ::rpc_core::__private::DecodeArgument,)*>(
            #args: ::rpc_core::__private::Args<'_>,
            #method: &str,
        ) -> ::core::result::Result<(#(#params,)*), ::rpc_core::__private::RemoteError> {
            #args.decode(#method)
        }
        let (#(#locals,)*) = #decode::<#(#types,)*>(#args, #method)?;
    }
}

/// The handler of a call, from the future of the trait method's result: the answer bound by
/// `EncodeAnswer`.
pub(super) fn respond(m: &Method, handler: TokenStream) -> TokenStream {
    let respond = local("__respond");
    let answer = local("__R");
    let output = output(m);
    let future = local("__future");
    quote! {{
        fn #respond<#answer: ::rpc_core::__private::EncodeAnswer + ::core::marker::Send + 'static>(
            #future: impl ::core::future::Future<Output = #answer> + ::core::marker::Send + 'static,
        ) -> ::rpc_core::__private::HandlerFuture {
            ::rpc_core::__private::respond(#future)
        }
        #respond::<#output>(#handler)
    }}
}

/// One type parameter per argument of `m`, for the generic functions above.
fn type_params(m: &Method) -> Vec<Ident> {
    (0..m.args.len())
        .map(|i| local(&format!("__A{i}")))
        .collect()
}
