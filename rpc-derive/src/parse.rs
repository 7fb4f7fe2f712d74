//! Reads a trait into the small model the rest of the crate works on.
//!
//! Parsing judges nothing: it records what was written, mistakes included, so that
//! `validate` can report every mistake at once with a precise span and `expand` can assume a
//! valid model.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Attribute, Block, FnArg, Ident, ItemTrait, Pat, Signature, TraitItem, Type};

/// The prefix that makes a trait method remotely callable.
pub(crate) const PREFIX: &str = "remote_";

/// A `#[remote]` trait: the trait as written plus its remote methods.
pub(crate) struct Interface {
    /// The trait exactly as the user wrote it.
    pub(crate) item: ItemTrait,
    /// The trait's name as a plain string (no `r#`); the interface name peers see.
    pub(crate) name: String,
    /// The methods named `remote_*`, in declaration order.
    pub(crate) methods: Vec<Method>,
}

/// One `remote_*` method.
pub(crate) struct Method {
    /// Index of the method in `Interface::item.items`.
    pub(crate) index: usize,
    /// Attributes as written (docs included).
    pub(crate) attrs: Vec<Attribute>,
    /// The signature as written.
    pub(crate) sig: Signature,
    /// The default body, if the trait provides one.
    pub(crate) default: Option<Block>,
    /// The name without the prefix: the method name on the wire and on the proxy.
    pub(crate) name: String,
    /// The arguments after the receiver.
    pub(crate) args: Vec<Arg>,
}

/// How the name after `remote_` can be spelled as a Rust method name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyName {
    /// An ordinary identifier (`calculate`).
    Plain,
    /// A keyword, usable as a raw identifier (`r#type`).
    Raw,
    /// Not usable as a method name at all (`1st`, `self`, `_`, empty).
    Invalid,
}

/// One argument of a remote method (not the receiver).
pub(crate) struct Arg {
    /// Attributes on the argument.
    pub(crate) attrs: Vec<Attribute>,
    /// The pattern as written (`a`, `mut a`, `(a, b)`, `_`...).
    pub(crate) pat: Pat,
    /// The type as written.
    pub(crate) ty: Type,
}

impl Method {
    /// The method's own name with the prefix, without any `r#`.
    pub(crate) fn full_name(&self) -> String {
        self.sig.ident.unraw().to_string()
    }

    /// What kind of identifier `name` makes for the generated proxy method.
    pub(crate) fn proxy_name(&self) -> ProxyName {
        let name = self.name.as_str();
        let shaped_like_ident = syn::parse::Parser::parse_str(Ident::parse_any, name).is_ok();
        if !shaped_like_ident || matches!(name, "_" | "self" | "Self" | "super" | "crate") {
            ProxyName::Invalid
        } else if syn::parse_str::<Ident>(name).is_ok() && name != "gen" {
            ProxyName::Plain
        } else {
            ProxyName::Raw
        }
    }

    /// The identifier of the generated proxy method: `name`, raw when it is a keyword.
    /// Only meaningful once `validate` accepted the name.
    pub(crate) fn proxy_ident(&self) -> Ident {
        let span = self.sig.ident.span();
        match self.proxy_name() {
            ProxyName::Raw => Ident::new_raw(&self.name, span),
            ProxyName::Plain | ProxyName::Invalid => Ident::new(&self.name, span),
        }
    }

    /// The plain identifier of each argument; only meaningful once `validate` accepted the
    /// patterns.
    pub(crate) fn arg_idents(&self) -> impl Iterator<Item = &Ident> {
        self.args.iter().filter_map(|arg| match &arg.pat {
            Pat::Ident(p) => Some(&p.ident),
            _ => None,
        })
    }
}

/// Builds the model of `item`.
pub(crate) fn interface(item: ItemTrait) -> Interface {
    let name = item.ident.unraw().to_string();
    let methods = item
        .items
        .iter()
        .enumerate()
        .filter_map(|(index, trait_item)| match trait_item {
            TraitItem::Fn(f) => {
                let full = f.sig.ident.unraw().to_string();
                let name = full.strip_prefix(PREFIX)?.to_owned();
                Some(Method {
                    index,
                    attrs: f.attrs.clone(),
                    sig: f.sig.clone(),
                    default: f.default.clone(),
                    name,
                    args: f
                        .sig
                        .inputs
                        .iter()
                        .filter_map(|input| match input {
                            FnArg::Receiver(_) => None,
                            FnArg::Typed(t) => Some(Arg {
                                attrs: t.attrs.clone(),
                                pat: (*t.pat).clone(),
                                ty: (*t.ty).clone(),
                            }),
                        })
                        .collect(),
                })
            }
            _ => None,
        })
        .collect();
    Interface {
        item,
        name,
        methods,
    }
}

/// The span of the whole parameter list `( ... )` of `sig`.
pub(crate) fn params_span(sig: &Signature) -> Span {
    sig.paren_token.span.join()
}
