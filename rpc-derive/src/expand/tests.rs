//! The generated code names no crate but `rpc_core`, `core` and `std`, so a crate that uses
//! `#[remote]` needs no dependency besides rpc-core: serde, for the references' own
//! `Serialize` and `Deserialize`, is reached as `::rpc_core::__private::serde`.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::quote;

/// The crates the generated code may name.
const ALLOWED: &[&str] = &["rpc_core", "core", "std"];

/// Crates rpc-core depends on, which the user's crate may not: never named without a path
/// leading to them through `rpc_core`.
const INDIRECT: &[&str] = &["serde", "tokio", "futures", "bincode", "rpc_derive"];

/// Every path in `tokens` that names a crate the user's crate may not depend on: a leading
/// `::` followed by a crate not in [`ALLOWED`], or a path starting with a crate of
/// [`INDIRECT`].
fn foreign_paths(tokens: TokenStream, found: &mut Vec<String>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        match tree {
            TokenTree::Group(group) => foreign_paths(group.stream(), found),
            TokenTree::Punct(p) if p.as_char() == ':' && p.spacing() == Spacing::Joint => {
                let leading = !continues_a_path(&trees[..i]);
                if let (true, Some(TokenTree::Ident(name))) = (leading, trees.get(i + 2))
                    && !ALLOWED.contains(&name.to_string().as_str())
                {
                    found.push(format!("::{name}"));
                }
            }
            TokenTree::Ident(name) if INDIRECT.contains(&name.to_string().as_str()) => {
                let after_colons = matches!(
                    trees[..i].last(),
                    Some(TokenTree::Punct(p)) if p.as_char() == ':'
                );
                if !after_colons {
                    found.push(name.to_string());
                }
            }
            _ => {}
        }
    }
}

/// The keywords after which a `::` starts a path (`impl ::serde::Serialize for`).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "type", "unsafe", "use", "where", "while",
];

/// Whether a `::` after `before` continues a path (`Self::new`, `<T as Trait>::f`) rather
/// than starting one (`(::core::..`, `-> ::rpc_core::..`, `x: ::std::..`, `impl ::core::..`).
fn continues_a_path(before: &[TokenTree]) -> bool {
    match before {
        [.., TokenTree::Ident(word)] => !KEYWORDS.contains(&word.to_string().as_str()),
        [.., TokenTree::Punct(arrow), TokenTree::Punct(close)]
            if close.as_char() == '>'
                && arrow.spacing() == Spacing::Joint
                && matches!(arrow.as_char(), '-' | '=') =>
        {
            false
        }
        [.., TokenTree::Punct(close)] => close.as_char() == '>',
        _ => false,
    }
}

#[test]
fn generated_code_names_only_rpc_core_core_and_std() {
    let input = quote! {
        /// Everything the expansion writes: arguments, answers, default bodies, references.
        pub trait Shop {
            async fn remote_buy(&self, item: String, count: u32) -> Result<u64, String>;
            async fn remote_ping(&self);
            async fn remote_greet(&self, name: String) -> String { format!("hi {name}") }
            async fn remote_pass(&self, other: ShopRef) -> Vec<ShopRef>;
            fn local(&self) -> u8 { 1 }
        }
    };
    let output = crate::expand(&TokenStream::new(), input).expect("a valid trait");
    let mut found = Vec::new();
    foreign_paths(output, &mut found);
    assert!(found.is_empty(), "the generated code names {found:?}");
}

#[test]
fn a_foreign_path_is_found() {
    let mut found = Vec::new();
    let tokens = quote! {
        impl ::futures::Future for X {}
        fn f(x: ::serde::Value) -> ::tokio::Thing { serde::x(); ::rpc_core::__private::serde::y() }
    };
    foreign_paths(tokens, &mut found);
    assert_eq!(found, ["::futures", "::serde", "::tokio", "serde"]);
}
