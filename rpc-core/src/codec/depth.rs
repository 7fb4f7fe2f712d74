//! A nesting-depth limit for any serde [`Deserializer`].
//!
//! [`deserialize_limited`] wraps a deserializer so that every nested value goes through the
//! wrapper, the way `serde_path_to_error` and `serde_ignored` do it: the [`Deserializer`] hands
//! the [`Visitor`] a wrapped visitor; the visitor's [`SeqAccess`], [`MapAccess`],
//! [`EnumAccess`] and [`VariantAccess`] are wrapped; they wrap every [`DeserializeSeed`] they
//! are given; and the seed wraps the deserializer it is handed, which brings us back to the
//! start. Everything is forwarded unchanged; the only difference is the limit.
//!
//! # What one level is
//!
//! One level is one `deserialize_*` call on the (wrapped) deserializer that starts while
//! another one is still running: the depth is counted on entry to a `deserialize_*` method and
//! un-counted when it returns. The outermost value is at level 1; everything read *while*
//! reading a value is one level deeper than that value: the fields of a struct or tuple, the
//! elements of a sequence, the keys and values of a map, the content of `Some`, of a newtype
//! struct or of an enum variant, and the variant tag of an enum. `Box`, `Rc`, `Arc` and
//! `#[serde(transparent)]` types add no level (they hand the deserializer straight to the
//! inner type). It is the depth the *value* in the input reaches, not the depth of its type:
//! an empty `Vec<Vec<u64>>` only reaches level 1.
//!
//! For example `u64` reaches depth 1, `Vec<u64>` and `(u64, u64)` 2, `Option<Vec<u64>>` 3,
//! and with `enum Tree { Leaf(u64), Node(Box<Tree>) }`, `Leaf(7)` reaches 2 (the enum, then
//! its tag and the `u64`) and each `Node` around it adds one.
//!
//! A value whose depth would exceed the limit fails, with a custom error
//! ([`depth_exceeded`]), at the first `deserialize_*` call beyond it, before any of the deeper
//! value is read. So the stack a decode uses is bounded by the limit times what one level of
//! the types involved takes.
//!
//! The count is not a shared counter: every wrapper carries the depth by value, and a
//! `deserialize_*` call hands its visitor (and through it the accesses, seeds and nested
//! deserializers) the depth plus one; when it returns, the caller's own copy is still the old
//! depth. That is the same as counting on entry and un-counting on return, without a write to
//! memory per value (measured: with a shared `Cell<usize>` instead, decoding a `Vec<u8>` was
//! 10 to 50% slower).
//!
//! Not forwarded: serde's two `#[doc(hidden)]`, non-public hooks keep their default
//! implementations. `Deserializer::__deserialize_content_v1` calls `deserialize_any`, which is
//! counted; `Visitor::__private_visit_untagged_option` refuses, which only matters for
//! `#[serde(flatten)]` `Option` fields of self-describing formats, never for bincode.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Deserializes a `T` from `deserializer`, failing with a custom error (see
/// [`depth_exceeded`]) once the value is nested more than `max_depth` levels deep (see the
/// module docs for what a level is). With `max_depth` 0 nothing deserializes.
pub(crate) fn deserialize_limited<'de, T, D>(
    deserializer: D,
    max_depth: usize,
) -> Result<T, D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(Depth {
        de: deserializer,
        level: Level {
            depth: 0,
            max: max_depth,
        },
    })
}

/// [`deserialize_limited`] as a seed, for decoders that take one.
pub(crate) struct Limited<T> {
    max_depth: usize,
    value: std::marker::PhantomData<fn() -> T>,
}

impl<T> Limited<T> {
    /// Deserializes a `T` at most `max_depth` levels deep.
    pub(crate) fn new(max_depth: usize) -> Self {
        Limited {
            max_depth,
            value: std::marker::PhantomData,
        }
    }
}

impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Limited<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserialize_limited(deserializer, self.max_depth)
    }
}

/// The message of the error a too deeply nested value fails with.
pub(crate) fn depth_exceeded(max_depth: usize) -> String {
    format!("the value is nested more than {max_depth} levels deep (max_decode_depth)")
}

/// The depth counter. Each wrapper carries it by value: a `deserialize_*` call counts one
/// more level for everything it hands on, and its return un-counts it (the caller's copy was
/// never changed). Nothing is shared, so nothing is written to memory per value.
#[derive(Clone, Copy)]
struct Level {
    /// Levels entered (and not yet left) around this point.
    depth: usize,
    max: usize,
}

impl Level {
    /// The level inside one more `deserialize_*` call, or the error if that is one too many.
    #[inline(always)]
    fn enter<E: de::Error>(self) -> Result<Level, E> {
        if self.depth >= self.max {
            return Err(exceeded(self.max));
        }
        Ok(Level {
            depth: self.depth + 1,
            max: self.max,
        })
    }
}

/// The error of a value nested more than `max` levels deep (kept out of the hot path).
#[cold]
#[inline(never)]
fn exceeded<E: de::Error>(max: usize) -> E {
    E::custom(depth_exceeded(max))
}

/// The wrapped [`Deserializer`]: every `deserialize_*` call is one level (see the module docs).
struct Depth<D> {
    de: D,
    level: Level,
}

/// The wrapped [`Visitor`]: hands its visitor wrapped deserializers and accesses.
struct Wrap<V> {
    visitor: V,
    level: Level,
}

/// The wrapped [`DeserializeSeed`]: wraps the deserializer it is given.
struct Seed<S> {
    seed: S,
    level: Level,
}

/// A wrapped [`SeqAccess`], [`MapAccess`], [`EnumAccess`] or [`VariantAccess`] (whichever `A`
/// is): wraps the seeds and visitors it is given.
struct Access<A> {
    access: A,
    level: Level,
}

/// `deserialize_*` methods: count a level around the inner call, wrap the visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let level = self.level.enter()?;
            self.de.$method($($arg,)* Wrap { visitor, level })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Depth<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// `visit_*` methods that take a plain value: forwarded as they are.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let level = self.level;
        self.visitor.visit_some(Depth { de, level })
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let level = self.level;
        self.visitor.visit_newtype_struct(Depth { de, level })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        let level = self.level;
        self.visitor.visit_seq(Access { access, level })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        let level = self.level;
        self.visitor.visit_map(Access { access, level })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, access: A) -> Result<V::Value, A::Error> {
        let level = self.level;
        self.visitor.visit_enum(Access { access, level })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        let level = self.level;
        self.seed.deserialize(Depth { de, level })
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let level = self.level;
        self.access.next_element_seed(Seed { seed, level })
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let level = self.level;
        self.access.next_key_seed(Seed { seed, level })
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let level = self.level;
        self.access.next_value_seed(Seed { seed, level })
    }

    #[inline]
    fn next_entry_seed<K: DeserializeSeed<'de>, T: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: T,
    ) -> Result<Option<(K::Value, T::Value)>, A::Error> {
        let level = self.level;
        self.access
            .next_entry_seed(Seed { seed: key, level }, Seed { seed: value, level })
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.access.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
    type Error = A::Error;
    type Variant = Access<A::Variant>;

    #[inline]
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let level = self.level;
        let (tag, access) = self.access.variant_seed(Seed { seed, level })?;
        Ok((tag, Access { access, level }))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), A::Error> {
        self.access.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let level = self.level;
        self.access.newtype_variant_seed(Seed { seed, level })
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let level = self.level;
        self.access.tuple_variant(len, Wrap { visitor, level })
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let level = self.level;
        self.access.struct_variant(fields, Wrap { visitor, level })
    }
}

#[cfg(test)]
#[path = "depth_tests.rs"]
mod tests;
