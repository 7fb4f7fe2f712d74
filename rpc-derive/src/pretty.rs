//! Renders tokens the way a person would write them, for error messages.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

/// Renders tokens the way a person would write them (`Vec<&'a str>`, not `Vec < & 'a str >`),
/// for messages.
pub(crate) fn pretty(tokens: &dyn ToTokens) -> String {
    let mut atoms = Vec::new();
    flatten(tokens.to_token_stream(), &mut atoms);
    let mut out = String::new();
    for (i, atom) in atoms.iter().enumerate() {
        if i > 0 && space_between(&atoms[i - 1], atom) {
            out.push(' ');
        }
        match atom {
            Atom::Word(s) | Atom::Op(s) => out.push_str(s),
            Atom::Open(c) | Atom::Close(c) => out.push(*c),
        }
    }
    out
}

enum Atom {
    Word(String),
    Op(String),
    Open(char),
    Close(char),
}

fn flatten(tokens: TokenStream, atoms: &mut Vec<Atom>) {
    let mut joint = false;
    for tree in tokens {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ('(', ')'),
                    Delimiter::Brace => ('{', '}'),
                    Delimiter::Bracket => ('[', ']'),
                    Delimiter::None => {
                        flatten(g.stream(), atoms);
                        joint = false;
                        continue;
                    }
                };
                atoms.push(Atom::Open(open));
                flatten(g.stream(), atoms);
                atoms.push(Atom::Close(close));
                joint = false;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                match atoms.last_mut() {
                    Some(Atom::Op(op)) if joint && is_operator(&format!("{op}{c}")) => op.push(c),
                    _ => atoms.push(Atom::Op(c.to_string())),
                }
                joint = p.spacing() == proc_macro2::Spacing::Joint;
            }
            TokenTree::Ident(i) => {
                atoms.push(Atom::Word(i.to_string()));
                joint = false;
            }
            TokenTree::Literal(l) => {
                atoms.push(Atom::Word(l.to_string()));
                joint = false;
            }
        }
    }
}

/// The multi-character operators that can appear in types and signatures.
fn is_operator(op: &str) -> bool {
    matches!(
        op,
        "::" | "->" | "=>" | "&&" | ".." | "..." | "..=" | ">>" | ">>>"
    )
}

fn space_between(prev: &Atom, next: &Atom) -> bool {
    let closing_angle = |op: &str| op.chars().all(|c| c == '>');
    match (prev, next) {
        (Atom::Open(_), _) | (_, Atom::Close(_)) => false,
        (_, Atom::Op(op)) if matches!(op.as_str(), "," | ";" | ":" | "::" | "<") => false,
        (_, Atom::Op(op)) if closing_angle(op) => false,
        (Atom::Op(op), _) if matches!(op.as_str(), "&" | "&&" | "'" | "<" | "::" | "#" | "!") => {
            false
        }
        (Atom::Word(_), Atom::Open('(' | '[')) => false,
        _ => true,
    }
}
