//! Every misuse check, each with an error spanned on the offending tokens.
//!
//! A remote method crosses a process boundary: a peer sends its name and its encoded
//! arguments, and gets back the encoded return value. Every rule here follows from that: the
//! method must be callable from a shared object (`&self`), concurrently (`async`), with values
//! that can be decoded into owned data (no borrows, no `impl Trait`, no generics).
//!
//! Checks collect all the errors they find and combine them, so one build reports every
//! mistake of the trait.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, GenericArgument, GenericParam, Item, ItemTrait, Pat, PathArguments, Receiver,
    ReturnType, TraitItem, Type, TypeParamBound,
};

use crate::parse::{self, Interface, Method, PREFIX, ProxyName};
use crate::pretty::pretty;
use owned::Position;

mod owned;

/// The most arguments a remote method can take.
const MAX_ARGUMENTS: usize = 16;

/// Inherent or trait methods of the generated `<Trait>Ref` that a proxy method must not take
/// the name of, with the reason.
const TAKEN: &[(&str, &str)] = &[
    ("new", "`#[remote]` generates it to wrap a local object"),
    (
        "from_arc",
        "`#[remote]` generates it to wrap a local object",
    ),
    (
        "with_timeout",
        "`#[remote]` generates it to set a deadline on calls",
    ),
    ("object", "it comes from `rpc_core::RemoteRef`"),
    ("peer", "it comes from `rpc_core::RemoteRef`"),
    ("is_local", "it comes from `rpc_core::RemoteRef`"),
    ("same_object", "it comes from `rpc_core::RemoteRef`"),
    ("from_object", "it comes from `rpc_core::RemoteRef`"),
    ("clone", "a proxy method would hide `Clone::clone`"),
    (
        "clone_from",
        "a proxy method would hide `Clone::clone_from`",
    ),
];

/// Collects errors and combines them into one.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        self.add(Error::new(span, message));
    }

    fn push_spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.add(Error::new_spanned(tokens, message));
    }

    fn add(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// `#[remote]` takes no arguments.
pub(crate) fn attribute_args(args: &TokenStream) -> syn::Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(Error::new_spanned(
        args,
        "`#[remote]` takes no arguments: write `#[remote]` alone; the methods named \
         `remote_*` are the remotely callable ones",
    ))
}

/// `#[remote]` goes on a trait.
pub(crate) fn target(item: Item) -> syn::Result<ItemTrait> {
    let (what, span) = match item {
        Item::Trait(item) => return Ok(item),
        // A method of a trait (no body) or of an impl block.
        Item::Verbatim(tokens) if syn::parse2::<syn::TraitItemFn>(tokens.clone()).is_ok() => {
            return Err(on_a_method(tokens));
        }
        Item::Fn(f) if f.sig.receiver().is_some() => return Err(on_a_method(f)),
        Item::Struct(i) => ("a struct", i.struct_token.span),
        Item::Enum(i) => ("an enum", i.enum_token.span),
        Item::Union(i) => ("a union", i.union_token.span),
        Item::Fn(i) => ("a function", i.sig.fn_token.span),
        Item::Impl(i) => ("an impl block", i.impl_token.span),
        Item::Mod(i) => ("a module", i.mod_token.span),
        Item::Type(i) => ("a type alias", i.type_token.span),
        Item::TraitAlias(i) => ("a trait alias", i.trait_token.span),
        other => ("this item", other.span()),
    };
    Err(Error::new(
        span,
        format!(
            "`#[remote]` goes on a trait, not on {what}: write \
             `#[remote] pub trait Name {{ async fn remote_method(&self, ...) -> T; }}` and \
             implement it for your type"
        ),
    ))
}

fn on_a_method(method: impl ToTokens) -> Error {
    Error::new_spanned(
        method,
        "`#[remote]` goes on the trait, not on one of its methods: put it on the trait and \
         name the remotely callable methods `remote_*`",
    )
}

/// Every check on a parsed trait.
pub(crate) fn interface(iface: &Interface) -> syn::Result<()> {
    let mut errors = Errors::default();
    trait_generics(iface, &mut errors);
    some_remote_method(iface, &mut errors);
    for method in &iface.methods {
        method_checks(iface, method, &mut errors);
    }
    errors.finish()
}

/// A trait with methods, none of them named `remote_*`, gives peers nothing to call: the prefix
/// was most likely forgotten, and without this check the mistake shows up only where
/// `<Trait>Ref` has no such method. A trait without methods is a marker, whose reference can
/// be passed around but not called; it is accepted.
fn some_remote_method(iface: &Interface, errors: &mut Errors) {
    if !iface.methods.is_empty() {
        return;
    }
    let trait_name = &iface.name;
    for item in &iface.item.items {
        if let TraitItem::Fn(f) = item {
            let name = f.sig.ident.unraw();
            errors.push(
                f.sig.ident.span(),
                format!(
                    "`#[remote]` trait `{trait_name}` has no remote method: only methods named \
                     `{PREFIX}*` can be called by peers; rename `{name}` to `{PREFIX}{name}`, \
                     and `{trait_name}Ref` gets a `{name}` method that calls it"
                ),
            );
        }
    }
}

fn trait_generics(iface: &Interface, errors: &mut Errors) {
    let generics = &iface.item.generics;
    if generics.params.is_empty() {
        return;
    }
    let only_lifetimes = generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)));
    let message = if only_lifetimes {
        format!(
            "a `#[remote]` trait cannot have lifetime parameters: its methods take and return \
             owned values decoded from the wire, so there is nothing to borrow; write \
             `trait {}`",
            iface.name
        )
    } else {
        format!(
            "a `#[remote]` trait cannot be generic: a peer calls its methods by name and cannot \
             choose type parameters; write `trait {}` and use concrete types in its methods",
            iface.name
        )
    };
    errors.push_spanned(generics, message);
}

fn method_checks(iface: &Interface, m: &Method, errors: &mut Errors) {
    let full = m.full_name();
    let sig = &m.sig;

    name(iface, m, errors);

    if let Some(constness) = &sig.constness {
        errors.push(
            constness.span,
            format!("remote method `{full}` cannot be a `const fn`: write `async fn {full}`"),
        );
    }
    // `const fn` already has its error, which says to write `async fn`.
    if sig.asyncness.is_none() && sig.constness.is_none() {
        errors.push(sig.fn_token.span, not_async_message(m));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(
            unsafety.span,
            format!(
                "remote method `{full}` cannot be `unsafe`: a peer cannot promise to uphold a \
                 safety contract; remove `unsafe` and check the preconditions inside the method"
            ),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.push_spanned(
            abi,
            format!(
                "remote method `{full}` cannot be `{}`: the generated code calls it as a plain \
                 Rust method; remove the ABI",
                pretty(abi)
            ),
        );
    }
    if !sig.generics.params.is_empty() {
        let only_lifetimes = sig
            .generics
            .params
            .iter()
            .all(|p| matches!(p, GenericParam::Lifetime(_)));
        let message = if only_lifetimes {
            format!(
                "remote method `{full}` cannot have lifetime parameters: its arguments and \
                 return value are owned values decoded from the wire, so there is nothing to \
                 borrow; remove `{}` and use owned types",
                pretty(&sig.generics)
            )
        } else {
            format!(
                "remote method `{full}` cannot be generic: a peer sends only the method name and \
                 encoded arguments, so it cannot choose `{}`; use concrete owned types",
                pretty(&sig.generics)
            )
        };
        errors.push_spanned(&sig.generics, message);
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push_spanned(
            where_clause,
            format!(
                "remote method `{full}` cannot have a `where` clause: remote methods are not \
                 generic; remove it and use concrete owned types"
            ),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push_spanned(
            variadic,
            format!("remote method `{full}` cannot be variadic: take a `Vec<T>` instead"),
        );
    }

    receiver(m, errors);
    argument_count(m, errors);

    for arg in &m.args {
        argument(&full, &arg.attrs, &arg.pat, errors);
        owned::check(&arg.ty, Position::Argument, &iface.name, errors);
    }
    // A non-async method already has its error; the return type of `fn remote_x() -> impl
    // Future<..>` is part of that mistake, not a second one.
    if sig.asyncness.is_some()
        && let ReturnType::Type(_, ty) = &sig.output
    {
        owned::check(ty, Position::Return, &iface.name, errors);
    }
}

fn name(iface: &Interface, m: &Method, errors: &mut Errors) {
    let full = m.full_name();
    let span = m.sig.ident.span();
    if m.name.is_empty() {
        errors.push(
            span,
            format!(
                "`{PREFIX}` alone is not a remote method name: write `{PREFIX}<name>`, for \
                 example `remote_ping`, which peers call as `ping`"
            ),
        );
        return;
    }
    if m.proxy_name() == ProxyName::Invalid {
        errors.push(
            span,
            format!(
                "`{full}` would be called `{}` by peers and on `{}Ref`, which is not a valid \
                 Rust method name; rename it so that the part after `{PREFIX}` is an identifier",
                m.name, iface.name
            ),
        );
        return;
    }
    if let Some((_, why)) = TAKEN.iter().find(|(taken, _)| *taken == m.name) {
        errors.push(
            span,
            format!(
                "`{full}` would generate the method `{}Ref::{}`, but that name is taken: {why}; \
                 rename the remote method",
                iface.name, m.name
            ),
        );
    }
}

fn not_async_message(m: &Method) -> String {
    let full = m.full_name();
    if let Some(output) = future_output(&m.sig.output) {
        return format!(
            "remote method `{full}` must be an `async fn`: write `async fn {full}(...) -> {}` \
             instead of returning `impl Future`; `#[remote]` adds the `Send` bound itself",
            pretty(output)
        );
    }
    format!(
        "remote method `{full}` must be `async`: write `async fn {full}`; calls from peers run \
         concurrently and answer when they finish"
    )
}

/// `T` when `output` is `-> impl Future<Output = T> + ...`.
fn future_output(output: &ReturnType) -> Option<&Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::ImplTrait(impl_trait) = &**ty else {
        return None;
    };
    impl_trait.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

fn receiver(m: &Method, errors: &mut Errors) {
    let full = m.full_name();
    let Some(receiver) = m.sig.receiver() else {
        errors.push(
            parse::params_span(&m.sig),
            format!(
                "remote method `{full}` needs a `&self` receiver: peers call it on an object; \
                 write `async fn {full}(&self, ...)`"
            ),
        );
        return;
    };
    if is_shared_self(receiver) {
        return;
    }
    let message = if receiver.colon_token.is_some() {
        format!(
            "remote method `{full}` must take `&self`, not `{}`: peers call it on a shared \
             object; write `&self`",
            pretty(receiver)
        )
    } else if receiver.reference.is_none() {
        format!(
            "remote method `{full}` must take `&self`, not `self`: the object is shared and \
             stays alive between calls; write `&self`"
        )
    } else if receiver.mutability.is_some() {
        format!(
            "remote method `{full}` must take `&self`, not `&mut self`: calls from peers run \
             concurrently on a shared object; write `&self` and keep mutable state behind a \
             `Mutex` or an atomic"
        )
    } else {
        format!("remote method `{full}` must take `&self`: write `&self` without a lifetime")
    };
    errors.push_spanned(receiver, message);
}

/// A call's arguments travel as one tuple, and serde encodes tuples of up to
/// [`MAX_ARGUMENTS`] elements; past that the error would come from deep inside the generated
/// code.
fn argument_count(m: &Method, errors: &mut Errors) {
    if m.args.len() <= MAX_ARGUMENTS {
        return;
    }
    let extra: Vec<_> = m
        .sig
        .inputs
        .iter()
        .filter(|input| matches!(input, FnArg::Typed(_)))
        .skip(MAX_ARGUMENTS)
        .collect();
    errors.push_spanned(
        quote!(#(#extra),*),
        format!(
            "remote method `{}` takes {} arguments, but at most {MAX_ARGUMENTS} can travel: a \
             call's arguments are encoded as one tuple, and serde encodes tuples of up to \
             {MAX_ARGUMENTS} elements; gather the arguments in a struct that derives \
             `Serialize` and `Deserialize` and take that instead",
            m.full_name(),
            m.args.len()
        ),
    );
}

/// `&self` or `&'_ self`.
fn is_shared_self(receiver: &Receiver) -> bool {
    let Some((_, lifetime)) = &receiver.reference else {
        return false;
    };
    receiver.colon_token.is_none()
        && receiver.mutability.is_none()
        && lifetime.as_ref().is_none_or(|l| l.ident == "_")
}

fn argument(full: &str, attrs: &[syn::Attribute], pat: &Pat, errors: &mut Errors) {
    for attr in attrs {
        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
            errors.push_spanned(
                attr,
                format!(
                    "`#[cfg]` cannot go on an argument of remote method `{full}`: both sides \
                     must agree on the arguments; put the `#[cfg]` on the whole method instead"
                ),
            );
        }
    }
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {}
        Pat::Wild(_) => errors.push_spanned(
            pat,
            format!(
                "give this argument of remote method `{full}` a name: it becomes a parameter \
                 of the generated proxy method (write `_name: T` if the method ignores it)"
            ),
        ),
        _ => errors.push_spanned(
            pat,
            format!(
                "an argument of remote method `{full}` must be a plain name such as \
                 `point: (i64, i64)`: it becomes a parameter of the generated proxy method; \
                 destructure it inside the method instead"
            ),
        ),
    }
}
