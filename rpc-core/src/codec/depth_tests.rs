//! Unit tests of the depth limit: behaviour unchanged below it, an error above it.
use std::collections::{BTreeMap, HashMap};

use serde::de::IgnoredAny;
use serde::de::IntoDeserializer;
use serde::de::value::{BorrowedBytesDeserializer, BorrowedStrDeserializer, Error};
use serde::{Deserialize, Serialize};

use super::*;
use crate::codec::{decode, decode_error_message, encode};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u64),
    Node(Box<Tree>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Newtype(u64);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Fields {
    a: u8,
    b: Vec<u8>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kinds {
    Unit,
    Newtype(u8),
    Tuple(u8, u8),
    Struct { a: u8 },
}

/// The smallest limit `value` decodes with (after a bincode round trip), checking that one
/// less fails with the depth error.
fn depth_of<T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(
    value: &T,
) -> usize {
    let bytes = encode(value).unwrap();
    let depth = (1..64)
        .find(|&max| decode::<T>(&bytes, 1 << 20, max).is_ok())
        .expect("decodes within 64 levels");
    assert_eq!(&decode::<T>(&bytes, 1 << 20, depth).unwrap(), value);
    let error = decode::<T>(&bytes, 1 << 20, depth - 1).unwrap_err();
    assert_eq!(error, depth_exceeded(depth - 1));
    depth
}

/// The examples of the module docs and of `Config::max_decode_depth`, and more.
#[test]
fn what_one_level_is() {
    assert_eq!(depth_of(&7u64), 1);
    assert_eq!(depth_of(&String::from("hi")), 1);
    assert_eq!(depth_of(&()), 1);
    assert_eq!(depth_of(&Unit), 1);
    assert_eq!(depth_of(&Box::new(7u64)), 1);
    assert_eq!(depth_of(&Newtype(7)), 2);
    assert_eq!(depth_of(&vec![7u64]), 2);
    assert_eq!(depth_of(&(7u64, 8u64)), 2);
    assert_eq!(depth_of(&Some(7u64)), 2);
    assert_eq!(depth_of(&None::<u64>), 1);
    assert_eq!(depth_of(&Some(vec![7u64])), 3);
    assert_eq!(depth_of(&vec![vec![7u64]]), 3);
    assert_eq!(depth_of(&Vec::<Vec<u64>>::new()), 1);
    assert_eq!(depth_of(&vec![Vec::<u64>::new()]), 2);
    assert_eq!(depth_of(&HashMap::from([(1u8, vec![2u8])])), 3);
    assert_eq!(depth_of(&Fields { a: 1, b: vec![] }), 2);
    assert_eq!(depth_of(&Fields { a: 1, b: vec![2] }), 3);
    // An enum is one level, its tag and its content one more.
    assert_eq!(depth_of(&Kinds::Unit), 2);
    assert_eq!(depth_of(&Kinds::Newtype(1)), 2);
    assert_eq!(depth_of(&Kinds::Tuple(1, 2)), 2);
    assert_eq!(depth_of(&Kinds::Struct { a: 1 }), 2);
    assert_eq!(depth_of(&Tree::Leaf(7)), 2);
    assert_eq!(depth_of(&Tree::Node(Box::new(Tree::Leaf(7)))), 3);
    let mut tree = Tree::Leaf(7);
    for _ in 0..10 {
        tree = Tree::Node(Box::new(tree));
    }
    assert_eq!(depth_of(&tree), 12);
}

#[test]
fn zero_levels_decode_nothing() {
    let bytes = encode(&7u8).unwrap();
    assert_eq!(
        decode::<u8>(&bytes, 1024, 0).unwrap_err(),
        depth_exceeded(0)
    );
}

/// `deserialize_any` and `deserialize_ignored_any` (which bincode does not support) are
/// forwarded and counted: serde's own value deserializers answer everything with them.
#[test]
fn any_and_ignored_any_are_forwarded_and_counted() {
    let nested = || IntoDeserializer::<Error>::into_deserializer(vec![vec![1u32, 2], vec![3]]);
    let back: Vec<Vec<u32>> = deserialize_limited(nested(), 3).unwrap();
    assert_eq!(back, vec![vec![1, 2], vec![3]]);
    let error = deserialize_limited::<Vec<Vec<u32>>, _>(nested(), 2).unwrap_err();
    assert_eq!(error.to_string(), depth_exceeded(2));
    deserialize_limited::<IgnoredAny, _>(nested(), 3).unwrap();
    let error = deserialize_limited::<IgnoredAny, _>(nested(), 2).unwrap_err();
    assert_eq!(error.to_string(), depth_exceeded(2));
}

#[test]
fn maps_are_forwarded_and_counted() {
    let map = BTreeMap::from([(String::from("a"), vec![1u32]), (String::from("b"), vec![])]);
    let back: BTreeMap<String, Vec<u32>> =
        deserialize_limited(IntoDeserializer::<Error>::into_deserializer(map.clone()), 3).unwrap();
    assert_eq!(back, map);
    assert!(
        deserialize_limited::<BTreeMap<String, Vec<u32>>, _>(
            IntoDeserializer::<Error>::into_deserializer(map),
            2
        )
        .is_err()
    );
}

#[test]
fn enums_from_another_deserializer() {
    #[derive(Debug, PartialEq, Deserialize)]
    enum Color {
        Red,
        Green,
    }
    let green = || IntoDeserializer::<Error>::into_deserializer("Green");
    let back: Color = deserialize_limited(green(), 2).unwrap();
    assert_eq!(back, Color::Green);
    assert!(deserialize_limited::<Color, _>(green(), 1).is_err());
    let _ = Color::Red;
}

#[test]
fn borrowed_data_is_forwarded() {
    let text = String::from("borrowed");
    let back: &str = deserialize_limited(BorrowedStrDeserializer::<Error>::new(&text), 1).unwrap();
    assert_eq!(back, "borrowed");
    let bytes = [1u8, 2, 3];
    let back: &[u8] =
        deserialize_limited(BorrowedBytesDeserializer::<Error>::new(&bytes), 1).unwrap();
    assert_eq!(back, &bytes);
}

#[test]
fn is_human_readable_is_forwarded() {
    struct HumanReadable(bool);
    impl<'de> Deserialize<'de> for HumanReadable {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let readable = d.is_human_readable();
            u32::deserialize(d)?;
            Ok(HumanReadable(readable))
        }
    }
    let bincode = encode(&1u32).unwrap();
    assert!(!decode::<HumanReadable>(&bincode, 1024, 8).unwrap().0);
    let value = IntoDeserializer::<Error>::into_deserializer(1u32);
    assert!(deserialize_limited::<HumanReadable, _>(value, 8).unwrap().0);
}

/// Errors other than the limit's are the inner deserializer's, unchanged.
#[test]
fn other_errors_are_unchanged() {
    let bytes = [2u8];
    let plain = bincode::serde::decode_from_slice::<bool, _>(&bytes, bincode::config::standard());
    assert_eq!(
        decode::<bool>(&bytes, 1024, 8).unwrap_err(),
        decode_error_message(plain.unwrap_err())
    );
    assert!(decode::<IgnoredAny>(&bytes, 1024, 8).is_err());
}
