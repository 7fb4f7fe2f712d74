//! Argument and return types: owned, concrete values that can be decoded from the wire (no
//! borrows, raw pointers, `impl Trait` or `Self`).

use quote::ToTokens;
use syn::visit::{self, Visit};
use syn::{Lifetime, Type};

use super::Errors;
use crate::pretty::pretty;

/// Where a type appears in a remote method.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    /// An argument's type.
    Argument,
    /// The return type.
    Return,
}

/// Checks that `ty` names an owned, concrete type.
pub(super) fn check(ty: &Type, position: Position, interface: &str, errors: &mut Errors) {
    let mut visitor = Owned {
        position,
        interface,
        errors,
    };
    visitor.visit_type(ty);
}

struct Owned<'a> {
    position: Position,
    interface: &'a str,
    errors: &'a mut Errors,
}

impl Owned<'_> {
    fn borrow(&mut self, tokens: &dyn ToTokens, instead: Option<String>) {
        let instead = instead.map_or_else(
            || "use an owned type".to_owned(),
            |t| format!("use `{t}` instead"),
        );
        let message = match self.position {
            Position::Argument => format!(
                "remote method arguments must be owned: they are decoded from the wire into \
                 fresh values, so `{}` has nothing to borrow from; {instead}",
                pretty(tokens)
            ),
            Position::Return => format!(
                "remote methods must return owned values: the answer is encoded and sent to \
                 the caller, so it cannot borrow like `{}`; {}",
                pretty(tokens),
                instead.replacen("use", "return", 1)
            ),
        };
        self.errors.push_spanned(tokens, message);
    }
}

impl<'ast> Visit<'ast> for Owned<'_> {
    fn visit_type(&mut self, ty: &'ast Type) {
        match ty {
            Type::Reference(r) => self.borrow(r, Some(owned_version(&r.elem))),
            Type::Ptr(p) => self.errors.push_spanned(
                p,
                "raw pointers cannot cross the wire: remote methods take and return owned \
                 serde types",
            ),
            Type::ImplTrait(i) => {
                let message = match self.position {
                    Position::Argument => {
                        "`impl Trait` cannot be a remote method argument: the receiving side \
                         decodes the argument and must know its concrete type; use a concrete \
                         owned type"
                    }
                    Position::Return => {
                        "`impl Trait` cannot be a remote method's return type: the caller \
                         decodes the answer and must know its concrete type; return a concrete \
                         owned type"
                    }
                };
                self.errors.push_spanned(i, message);
            }
            _ => visit::visit_type(self, ty),
        }
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident != "static" {
            self.borrow(lifetime, None);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.first().is_some_and(|s| s.ident == "Self")
        {
            let interface = self.interface;
            self.errors.push_spanned(
                path,
                format!(
                    "`Self` cannot appear in a remote method's argument or return types: callers \
                     go through `{interface}Ref`, which does not know the implementing type; \
                     name a concrete type"
                ),
            );
            return;
        }
        visit::visit_path(self, path);
    }
}

/// What to write instead of `&elem`.
fn owned_version(elem: &Type) -> String {
    match elem {
        Type::Slice(s) => format!("Vec<{}>", pretty(&s.elem)),
        Type::Path(p) if p.qself.is_none() => {
            let owned = match p
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .as_deref()
            {
                Some("str") => Some("String"),
                Some("Path") => Some("PathBuf"),
                Some("OsStr") => Some("OsString"),
                Some("CStr") => Some("CString"),
                _ => None,
            };
            owned.map_or_else(|| pretty(elem), str::to_owned)
        }
        _ => pretty(elem),
    }
}
