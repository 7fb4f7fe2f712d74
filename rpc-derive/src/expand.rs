//! Generates the code for a validated [`Interface`]: the rewritten trait, the `<Trait>Ref`
//! proxy (with its serde impls), the private dispatcher, and the private object-safe
//! "direct" trait through which a proxy of a local object calls it without encoding anything
//! (PB's `LocalAsRemote`).
//!
//! Every path is fully qualified (`::rpc_core`, `::core`, `::std`) so that the user's own names
//! cannot change what the generated code means, and every local of the generated code is
//! created with a mixed-site span and a `__` prefix so that it cannot clash with the user's
//! argument names.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{
    Attribute, FnArg, Ident, ItemTrait, Pat, ReturnType, TraitItem, TraitItemFn, Type, parse_quote,
};

use crate::parse::{Interface, Method};
use wire_types::{call_remote, decode_arguments, respond};

#[cfg(test)]
mod tests;
mod wire_types;

/// The whole expansion.
pub(crate) fn expand(iface: &Interface) -> TokenStream {
    let trait_ = rewrite_trait(iface);
    let reference = reference(iface);
    let serde = serde_impls(iface);
    let direct = direct(iface);
    let dispatch = dispatch(iface);
    quote! {
        #trait_
        #reference
        #serde
        #direct
        #dispatch
    }
}

fn ref_ident(iface: &Interface) -> Ident {
    format_ident!("{}Ref", iface.item.ident, span = iface.item.ident.span())
}

fn dispatch_ident(iface: &Interface) -> Ident {
    format_ident!("__{}Dispatch", iface.item.ident)
}

/// The private object-safe trait of direct calls.
fn direct_ident(iface: &Interface) -> Ident {
    format_ident!("__{}Direct", iface.item.ident)
}

/// The private wrapper of a local object that implements the direct trait.
fn local_ident(iface: &Interface) -> Ident {
    format_ident!("__{}Local", iface.item.ident)
}

/// A local of the generated code that user code can never name.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// The `#[cfg]` attributes of the trait, repeated on every generated item so that they all
/// exist exactly when the trait does.
fn trait_cfgs(iface: &Interface) -> Vec<&Attribute> {
    iface
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect()
}

/// The method's return type, `()` when it has none.
fn output(m: &Method) -> Type {
    match &m.sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// The trait as written, with `Send + Sync + 'static` supertraits and each remote method
/// turned from `async fn` into `fn -> impl Future + Send`.
fn rewrite_trait(iface: &Interface) -> ItemTrait {
    let mut item = iface.item.clone();
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));
    for m in &iface.methods {
        item.items[m.index] = TraitItem::Fn(rewrite_method(m));
    }
    item
}

fn rewrite_method(m: &Method) -> TraitItemFn {
    let mut sig = m.sig.clone();
    sig.asyncness = None;
    let output = output(m);
    sig.output = parse_quote! {
        -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
    };
    // `mut` goes from the parameters to the rebinding inside the future below: patterns are
    // not allowed in a method without a body, and a moved-in binding needs its own `mut`.
    let mut rebind = Vec::new();
    for input in &mut sig.inputs {
        if let FnArg::Typed(arg) = input
            && let Pat::Ident(p) = &mut *arg.pat
        {
            let mutability = p.mutability.take();
            let ident = &p.ident;
            rebind.push(quote!(let #mutability #ident = #ident;));
        }
    }
    // As in an `async fn`, every argument moves into the future, used or not, so arguments are
    // dropped when the future is, not when it is created. The body's statements go into the
    // future's block as they are: wrapped in their own braces, a one-expression body would get
    // a false `unused_braces` warning whose suggested fix does not compile.
    let default = m.default.as_ref().map(|body| {
        let statements = &body.stmts;
        parse_quote!({
            async move {
                #(#rebind)*
                #(#statements)*
            }
        })
    });
    TraitItemFn {
        attrs: m.attrs.clone(),
        sig,
        default,
        semi_token: m.default.is_none().then(Default::default),
    }
}

/// The attributes a proxy method copies from its trait method.
fn forwarded_attrs(m: &Method) -> impl Iterator<Item = &Attribute> {
    m.attrs.iter().filter(|a| {
        let path = a.path();
        path.is_ident("doc") || path.is_ident("cfg") || path.is_ident("deprecated")
    })
}

/// The `#[cfg]` attributes of a method.
fn method_cfgs(m: &Method) -> impl Iterator<Item = &Attribute> {
    m.attrs.iter().filter(|a| a.path().is_ident("cfg"))
}

fn reference(iface: &Interface) -> TokenStream {
    let vis = &iface.item.vis;
    let trait_ident = &iface.item.ident;
    let name = &iface.name;
    let ref_ident = ref_ident(iface);
    let dispatch_ident = dispatch_ident(iface);
    let direct_ident = direct_ident(iface);
    let local_ident = local_ident(iface);
    let cfgs = trait_cfgs(iface);

    let struct_doc = format!(
        " A cheap, cloneable reference to a [`{name}`] object, in this process or in a peer.\n\
         \n \
         Every `remote_*` method of [`{name}`] is a method here, without the prefix. A call \
         returns a [`CallFuture`](::rpc_core::CallFuture) that resolves to the method's return \
         value, or to a [`CallError`](::rpc_core::CallError) when the call could not be made or \
         failed on the other side. The trait's other methods are not reachable through a \
         reference.\n\
         \n \
         [`new`]({ref_ident}::new) and [`from_arc`]({ref_ident}::from_arc) wrap a local \
         implementation, to call it in process or to serve it with \
         [`Server`](::rpc_core::Server); [`Client::root`](::rpc_core::Client::root) gives a \
         reference to a peer's object. Clones refer to the same object. Calls through a \
         reference to a local object run it directly: nothing is encoded, and a panic in the \
         method is a [`CallError`](::rpc_core::CallError) like any other failure.\n\
         \n \
         A reference travels by reference: as an argument or return value of a remote method \
         (also inside a `Vec`, an `Option` or a struct), a reference to a local object exports \
         that object on the connection, and the peer gets a reference that calls back over \
         it; a reference sent back over the connection it came from arrives as the original \
         object. It cannot be serialized outside of a call.\n\
         \n \
         Generated by `#[remote]` on [`{name}`]."
    );
    let new_doc = format!(
        " Wraps `object`, a local implementation of [`{name}`]. Calls through the reference \
         run `object`'s `remote_*` methods, directly when they are made in this process, or \
         on behalf of a peer it is served or sent to."
    );
    let from_arc_doc = format!(
        " Like [`new`]({ref_ident}::new), for an object already in an \
         [`Arc`](::std::sync::Arc), for example one you also use directly."
    );
    let with_timeout_doc = " The same reference with a deadline: each call through the \
         returned reference fails with [`CallError::Timeout`](::rpc_core::CallError::Timeout) \
         after `timeout`; the deadline travels with the call so the callee stops the work. \
         Clones of the returned reference keep the deadline; `self` keeps its own.";

    let direct = local("__direct");
    let any = local("__any");
    let methods = iface.methods.iter().map(|m| {
        let attrs = forwarded_attrs(m);
        let has_docs = m.attrs.iter().any(|a| a.path().is_ident("doc"));
        let separator = has_docs.then(|| quote!(#[doc = ""]));
        let call_doc = format!(
            " Calls [`{name}::{}`] on the object, wherever it lives.",
            m.full_name()
        );
        let proxy = m.proxy_ident();
        let wire = &m.name;
        let idents: Vec<_> = m.arg_idents().collect();
        let types = m.args.iter().map(|a| &a.ty);
        let output = output(m);
        let call_direct = Ident::new("call_direct", m.sig.ident.span());
        let call_remote = call_remote(m);
        quote! {
            #(#attrs)*
            #separator
            #[doc = #call_doc]
            #vis fn #proxy(&self, #(#idents: #types),*) -> ::rpc_core::CallFuture<#output> {
                if let ::core::option::Option::Some(#direct) =
                    ::rpc_core::ObjectRef::local_direct(&self.object).and_then(|#any| {
                        <dyn ::core::any::Any>::downcast_ref::<
                            ::std::sync::Arc<dyn #direct_ident>,
                        >(#any)
                    })
                {
                    return self.object.#call_direct(
                        #wire,
                        <dyn #direct_ident as #direct_ident>::#proxy(&**#direct, #(#idents),*),
                    );
                }
                #call_remote
            }
        }
    });

    quote! {
        #(#cfgs)*
        #[doc = #struct_doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #[allow(dead_code)]
        #vis struct #ref_ident {
            object: ::rpc_core::ObjectRef,
        }

        #(#cfgs)*
        #[allow(dead_code, clippy::too_many_arguments, clippy::type_complexity)]
        impl #ref_ident {
            #[doc = #new_doc]
            #vis fn new<T: #trait_ident>(object: T) -> Self {
                Self::from_arc(::std::sync::Arc::new(object))
            }

            #[doc = #from_arc_doc]
            #vis fn from_arc<T: #trait_ident>(object: ::std::sync::Arc<T>) -> Self {
                let #direct: ::std::sync::Arc<dyn #direct_ident> =
                    ::std::sync::Arc::new(#local_ident(::std::sync::Arc::clone(&object)));
                Self {
                    object: ::rpc_core::ObjectRef::from_dispatch(::std::sync::Arc::new(
                        #dispatch_ident {
                            object,
                            direct: #direct,
                        },
                    )),
                }
            }

            #[doc = #with_timeout_doc]
            #vis fn with_timeout(&self, timeout: ::core::time::Duration) -> Self {
                Self {
                    object: ::rpc_core::ObjectRef::with_timeout(&self.object, timeout),
                }
            }

            #(#methods)*
        }

        #(#cfgs)*
        impl ::rpc_core::RemoteRef for #ref_ident {
            const INTERFACE: &'static str = #name;

            fn from_object(object: ::rpc_core::ObjectRef) -> Self {
                Self { object }
            }

            fn object(&self) -> &::rpc_core::ObjectRef {
                &self.object
            }
        }
    }
}

/// `Serialize` and `Deserialize` for the reference: it travels as its `ObjectRef`.
fn serde_impls(iface: &Interface) -> TokenStream {
    let ref_ident = ref_ident(iface);
    let cfgs = trait_cfgs(iface);
    let serde = quote!(::rpc_core::__private::serde);
    quote! {
        #(#cfgs)*
        impl #serde::Serialize for #ref_ident {
            fn serialize<__S>(
                &self,
                serializer: __S,
            ) -> ::core::result::Result<<__S as #serde::Serializer>::Ok, <__S as #serde::Serializer>::Error>
            where
                __S: #serde::Serializer,
            {
                <::rpc_core::ObjectRef as #serde::Serialize>::serialize(&self.object, serializer)
            }
        }

        #(#cfgs)*
        impl<'de> #serde::Deserialize<'de> for #ref_ident {
            fn deserialize<__D>(
                deserializer: __D,
            ) -> ::core::result::Result<Self, <__D as #serde::Deserializer<'de>>::Error>
            where
                __D: #serde::Deserializer<'de>,
            {
                // Refuses a reference to an object of another remote trait.
                ::rpc_core::__private::deserialize_ref::<Self, __D>(deserializer)
            }
        }
    }
}

/// The private object-safe trait with one boxed-future method per remote method, and its
/// implementation for a local object. A proxy whose object is local finds an
/// `Arc<dyn __TraitDirect>` through `Dispatch::direct` and calls through it: no encoding,
/// the arguments move as they are.
fn direct(iface: &Interface) -> TokenStream {
    let trait_ident = &iface.item.ident;
    let direct_ident = direct_ident(iface);
    let local_ident = local_ident(iface);
    let cfgs = trait_cfgs(iface);
    let this = local("__this");

    let signatures: Vec<_> = iface
        .methods
        .iter()
        .map(|m| {
            let cfgs = method_cfgs(m);
            let proxy = m.proxy_ident();
            let locals: Vec<_> = (0..m.args.len())
                .map(|i| local(&format!("__arg{i}")))
                .collect();
            let types = m.args.iter().map(|a| &a.ty);
            let output = output(m);
            let sig = quote! {
                fn #proxy(&self, #(#locals: #types),*) -> ::core::pin::Pin<
                    ::std::boxed::Box<
                        dyn ::core::future::Future<Output = #output> + ::core::marker::Send,
                    >,
                >
            };
            (quote!(#(#cfgs)*), sig, locals)
        })
        .collect();

    let declarations = signatures.iter().map(|(cfgs, sig, _)| quote!(#cfgs #sig;));
    let definitions = iface
        .methods
        .iter()
        .zip(&signatures)
        .map(|(m, (cfgs, sig, locals))| {
            let fn_ident = &m.sig.ident;
            quote! {
                #cfgs
                #sig {
                    let #this = ::std::sync::Arc::clone(&self.0);
                    ::std::boxed::Box::pin(async move {
                        <T as #trait_ident>::#fn_ident(&*#this, #(#locals),*).await
                    })
                }
            }
        });

    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(dead_code, clippy::too_many_arguments, clippy::type_complexity)]
        trait #direct_ident: ::core::marker::Send + ::core::marker::Sync {
            #(#declarations)*
        }

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(dead_code)]
        struct #local_ident<T>(::std::sync::Arc<T>);

        #(#cfgs)*
        #[allow(deprecated, clippy::too_many_arguments, clippy::type_complexity)]
        impl<T: #trait_ident> #direct_ident for #local_ident<T> {
            #(#definitions)*
        }
    }
}

fn dispatch(iface: &Interface) -> TokenStream {
    let trait_ident = &iface.item.ident;
    let name = &iface.name;
    let dispatch_ident = dispatch_ident(iface);
    let direct_ident = direct_ident(iface);
    let cfgs = trait_cfgs(iface);
    let method = local("__method");
    let args = local("__args");
    let this = local("__this");
    // With no remote method, the arguments are never read.
    let args_param = if iface.methods.is_empty() {
        quote!(_)
    } else {
        quote!(#args)
    };

    let arms = iface.methods.iter().map(|m| {
        let cfgs = method_cfgs(m);
        let wire = &m.name;
        let fn_ident = &m.sig.ident;
        let locals: Vec<_> = (0..m.args.len())
            .map(|i| local(&format!("__arg{i}")))
            .collect();
        let decode = decode_arguments(m, &locals, &args, &method);
        let respond = respond(
            m,
            quote! {
                async move { <T as #trait_ident>::#fn_ident(&*#this, #(#locals),*).await }
            },
        );
        quote! {
            #(#cfgs)*
            #wire => {
                #decode
                let #this = ::std::sync::Arc::clone(&self.object);
                ::core::result::Result::Ok(#respond)
            }
        }
    });

    let names = iface.methods.iter().map(|m| {
        let cfgs = method_cfgs(m);
        let wire = &m.name;
        quote! {
            #(#cfgs)*
            #wire => ::core::option::Option::Some(#wire),
        }
    });

    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(dead_code)]
        struct #dispatch_ident<T> {
            object: ::std::sync::Arc<T>,
            direct: ::std::sync::Arc<dyn #direct_ident>,
        }

        #(#cfgs)*
        #[allow(deprecated)]
        impl<T: #trait_ident> ::rpc_core::__private::Dispatch for #dispatch_ident<T> {
            fn interface(&self) -> &'static str {
                #name
            }

            fn dispatch(
                &self,
                #method: &str,
                #args_param: ::rpc_core::__private::Args<'_>,
            ) -> ::core::result::Result<
                ::rpc_core::__private::HandlerFuture,
                ::rpc_core::__private::RemoteError,
            > {
                match #method {
                    #(#arms)*
                    _ => ::core::result::Result::Err(
                        ::rpc_core::__private::no_such_method(#name, #method),
                    ),
                }
            }

            fn direct(&self) -> ::core::option::Option<&dyn ::core::any::Any> {
                ::core::option::Option::Some(&self.direct)
            }

            fn method_name(&self, #method: &str) -> ::core::option::Option<&'static str> {
                match #method {
                    #(#names)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}
