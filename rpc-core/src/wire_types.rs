//! What the argument and return types of a remote method must be: serde types, each side
//! needing one half. The caller encodes the arguments and decodes the answer; the callee
//! decodes the arguments and encodes the answer.
//!
//! Each half is a trait of its own, implemented for every type that has the serde trait it
//! stands for, so that the generated code states the requirement once per type, at the type
//! the user wrote. When that type misses the serde trait, the compile error is this trait's
//! message, in the words of remote methods, pointing at the type, instead of serde's, pointing
//! at a tuple of arguments inside the generated code. When only a type inside it misses it
//! (`Vec<Point>`), rustc gives serde's message (about `Point`), still at the type.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Declares one half of what a remote method's type must be: a trait with an error message
/// of its own, implemented for every type with the serde trait it stands for.
macro_rules! half {
    ($(#[doc = $doc:literal])* $name:ident: $serde:path, $message:literal, $label:literal) => {
        $(#[doc = $doc])*
        #[diagnostic::on_unimplemented(
            message = $message,
            label = $label,
            note = "a remote method's arguments and return value travel encoded: add \
                    `#[derive(serde::Serialize, serde::Deserialize)]` to your own types; serde \
                    implements both for the standard types, tuples of up to 16 elements and \
                    arrays of up to 32"
        )]
        pub trait $name: $serde {}

        impl<T: $serde> $name for T {}
    };
}

half! {
    /// The argument type of a remote method, as the caller needs it: encodable.
    EncodeArgument: Serialize,
    "`{Self}` cannot be an argument of a remote method: it does not implement `serde::Serialize`",
    "the caller encodes this argument to send it"
}

half! {
    /// The argument type of a remote method, as the callee needs it: decodable into an owned
    /// value.
    DecodeArgument: DeserializeOwned,
    "`{Self}` cannot be an argument of a remote method: it does not implement \
     `serde::Deserialize`",
    "the callee decodes this argument from the call"
}

half! {
    /// The return type of a remote method, as the callee needs it: encodable.
    EncodeAnswer: Serialize,
    "`{Self}` cannot be returned by a remote method: it does not implement `serde::Serialize`",
    "the callee encodes the value it returns"
}

half! {
    /// The return type of a remote method, as the caller needs it: decodable into an owned
    /// value.
    DecodeAnswer: DeserializeOwned,
    "`{Self}` cannot be returned by a remote method: it does not implement \
     `serde::Deserialize`",
    "the caller decodes the value the method returns"
}
