//! Unit tests of the codec: round trips, the byte limit, the depth limit, and the decode cost.
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;
use crate::protocol::{Message, WireRef};

#[test]
fn round_trip() {
    let v = (42i64, String::from("hi"), vec![1u8, 2, 3]);
    let bytes = encode(&v).unwrap();
    let back: (i64, String, Vec<u8>) = decode(&bytes, 4 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap();
    assert_eq!(back, v);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Named {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<f64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct UnitStruct;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Newtype(i32);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct TupleStruct(u8, String, bool);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kinds {
    Unit,
    Newtype(Named),
    Tuple(i8, Vec<u16>),
    Struct { a: char, b: Option<Box<Kinds>> },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u64),
    Node(Box<Tree>),
}

/// `Tree::Node` `nodes` times around `Tree::Leaf(7)`: depth `nodes + 2`.
fn tree_bytes(nodes: usize) -> Vec<u8> {
    let mut bytes = vec![1u8; nodes]; // variant index 1 (Node), a one-byte varint
    bytes.extend_from_slice(&[0, 7]); // variant index 0 (Leaf), then 7u64
    bytes
}

fn tree(nodes: usize) -> Tree {
    (0..nodes).fold(Tree::Leaf(7), |tree, _| Tree::Node(Box::new(tree)))
}

/// A fatter recursive type: two levels per `Fat` (the struct, then the `Option`).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Fat {
    name: String,
    numbers: Vec<u64>,
    pair: (i128, u8),
    map: BTreeMap<u8, String>,
    next: Option<Box<Fat>>,
}

fn fat(links: usize) -> Fat {
    (0..links)
        .fold(None, |next, i| {
            Some(Box::new(Fat {
                name: format!("link {i}"),
                numbers: vec![i as u64; 3],
                pair: (-(i as i128), 1),
                map: BTreeMap::from([(1, String::from("one"))]),
                next,
            }))
        })
        .map(|fat| *fat)
        .unwrap()
}

/// Runs `f` on a thread with a 2 MiB stack (tokio's worker threads have 2 MiB too).
fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Decoding gives what plain bincode gives, and takes as many bytes.
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let mut bytes = encode(&value).unwrap().to_vec();
    let back: T = decode(&bytes, 4 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap();
    assert_eq!(back, value);
    let (plain, plain_used): (T, usize) =
        bincode::serde::decode_from_slice(&bytes, config()).unwrap();
    assert_eq!(plain, value);
    assert_eq!(plain_used, bytes.len());
    bytes.extend_from_slice(b"payload");
    let (back, used): (T, usize) =
        decode_prefix(&bytes, 4 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap();
    assert_eq!((back, used), (value, plain_used));
}

#[test]
fn round_trips_of_many_shapes() {
    check(());
    check(true);
    check(-5i8);
    check(u16::MAX);
    check(i32::MIN);
    check(u64::MAX);
    check(i128::MIN);
    check(u128::MAX);
    check(1.5f32);
    check(-2.25f64);
    check('é');
    check(String::new());
    check(String::from("a string with ünïcode"));
    check(UnitStruct);
    check(Newtype(-3));
    check(TupleStruct(1, String::from("x"), true));
    let named = || Named {
        id: 9,
        name: String::from("n"),
        tags: vec![String::from("a"), String::from("b")],
        score: Some(0.5),
    };
    check(named());
    check(Kinds::Unit);
    check(Kinds::Newtype(named()));
    check(Kinds::Tuple(-1, vec![1, 2, 300]));
    check(Kinds::Struct {
        a: 'z',
        b: Some(Box::new(Kinds::Struct { a: 'y', b: None })),
    });
    check(None::<u32>);
    check(Some(Some(3u32)));
    check(vec![0u8; 16]);
    check(Vec::<String>::new());
    check(vec![vec![vec![1u8, 2], vec![]], vec![vec![3]]]);
    check(HashMap::from([
        (1u32, String::from("one")),
        (2, String::from("two")),
    ]));
    check(BTreeMap::from([(
        String::from("k"),
        vec![Some(1i64), None],
    )]));
    check((1u8, -2i64, String::from("three"), (4u16, [5u8, 6, 7])));
    check(tree(5));
    check(fat(3));
}

#[test]
fn a_call_header_borrows_its_method_name() {
    let call = Message::Call {
        id: 1,
        object: 0,
        method: "add".into(),
        deadline_ms: Some(500),
        refs: vec![
            WireRef::SenderExports {
                id: 3,
                interface: String::from("Calc"),
            },
            WireRef::ReceiverExports(4),
        ],
    };
    let mut bytes = encode(&call).unwrap().to_vec();
    let header_len = bytes.len();
    bytes.extend_from_slice(b"arguments");
    let (back, used) =
        decode_prefix::<Message<'_>>(&bytes, 4 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap();
    assert_eq!((&back, used), (&call, header_len));
    let Message::Call { method, .. } = back else {
        unreachable!()
    };
    assert!(
        matches!(method, std::borrow::Cow::Borrowed("add")),
        "{method:?} was copied"
    );
}

#[test]
fn huge_declared_length_is_an_error_not_an_abort() {
    // A varint u64 length of 2^43: without a limit bincode would try to allocate 8 TiB.
    let mut bytes = vec![0xfd];
    bytes.extend_from_slice(&(1u64 << 43).to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    let depth = DEFAULT_MAX_DECODE_DEPTH;
    assert!(decode::<Vec<u8>>(&bytes, 4 << 20, depth).is_err());
    assert!(decode::<String>(&bytes, 4 << 20, depth).is_err());
    assert!(decode::<Vec<u64>>(&bytes, 4 << 20, depth).is_err());
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = encode(&7u32).unwrap().to_vec();
    bytes.push(0);
    assert!(decode::<u32>(&bytes, 1024, DEFAULT_MAX_DECODE_DEPTH).is_err());
}

/// 20 KB saying `Node` twenty thousand times: an error, not a stack overflow, in a debug
/// build on a 2 MiB stack, whatever the byte limit tier.
#[test]
fn a_deeply_nested_value_is_an_error_not_a_stack_overflow() {
    on_small_stack(|| {
        let bytes = tree_bytes(20_000);
        for limit in [1024, 1 << 20, 4 << 20, usize::MAX] {
            let error = decode::<Tree>(&bytes, limit, DEFAULT_MAX_DECODE_DEPTH).unwrap_err();
            assert_eq!(
                error,
                "the value is nested more than 128 levels deep (max_decode_depth)"
            );
            assert!(decode_prefix::<Tree>(&bytes, limit, 1000).is_err());
        }
    });
}

#[test]
fn a_value_at_the_limit_decodes_and_one_deeper_fails() {
    on_small_stack(|| {
        for max in [1usize, 2, 3, 10, 127, 128, 129, 500] {
            let nodes = max.saturating_sub(2);
            if max >= 2 {
                let back: Tree = decode(&tree_bytes(nodes), 1 << 20, max).unwrap();
                assert_eq!(back, tree(nodes));
            }
            let error = decode::<Tree>(&tree_bytes(nodes + 1), 1 << 20, max).unwrap_err();
            assert!(error.contains("max_decode_depth"), "{error}");
        }
    });
}

/// The default limit is safe: values nested that deep decode on a 2 MiB stack in a debug
/// build.
#[test]
fn the_default_depth_fits_a_small_stack() {
    on_small_stack(|| {
        let depth = DEFAULT_MAX_DECODE_DEPTH;
        let bytes = tree_bytes(depth - 2);
        assert_eq!(
            decode::<Tree>(&bytes, 1 << 20, depth).unwrap(),
            tree(depth - 2)
        );
        // A `Fat` is two levels and its innermost fields two more.
        let links = depth / 2 - 1;
        let value = fat(links);
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<Fat>(&bytes, 1 << 20, depth).unwrap(), value);
        assert!(decode::<Fat>(&encode(&fat(links + 1)).unwrap(), 1 << 20, depth).is_err());
    });
}

#[test]
fn a_truncated_deep_payload_is_a_clean_error() {
    on_small_stack(|| {
        // Ends within the limit: bincode's own error.
        let error = decode::<Tree>(&[1u8; 100], 1 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap_err();
        assert!(
            error.contains("the bytes end before the value does"),
            "{error}"
        );
        let bytes = tree_bytes(100);
        let error = decode::<Tree>(&bytes[..bytes.len() - 1], 1 << 20, DEFAULT_MAX_DECODE_DEPTH)
            .unwrap_err();
        assert!(
            error.contains("the bytes end before the value does"),
            "{error}"
        );
        // Beyond it: the depth error comes first.
        let error = decode::<Tree>(&[1u8; 20_000], 1 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap_err();
        assert!(error.contains("max_decode_depth"), "{error}");
        assert!(decode::<Tree>(&[], 1 << 20, DEFAULT_MAX_DECODE_DEPTH).is_err());
    });
}

/// What the depth limit costs. Run in release:
/// `cargo test --release -p rpc-core --lib decode_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check; run it in release"]
fn decode_cost() {
    use std::hint::black_box;
    use std::time::Instant;

    /// The borrowing decoder as `decode_limited` uses it, without the depth wrapper.
    fn unwrapped<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> (T, usize) {
        bincode::serde::borrow_decode_from_slice(bytes, config().with_limit::<{ 4 << 20 }>())
            .unwrap()
    }
    fn limited<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> (T, usize) {
        decode_prefix(bytes, 4 << 20, DEFAULT_MAX_DECODE_DEPTH).unwrap()
    }
    /// ns per call of each of `fs`: the best of 200 runs of `N` calls, the runs of the
    /// candidates interleaved (fair under background load).
    fn time<const K: usize, const N: u32>(fs: [&dyn Fn(); K]) -> [f64; K] {
        let mut best = [f64::INFINITY; K];
        for _ in 0..200 {
            for (f, best) in fs.iter().zip(&mut best) {
                let start = Instant::now();
                for _ in 0..N {
                    f();
                }
                *best = best.min(start.elapsed().as_nanos() as f64 / f64::from(N));
            }
        }
        best
    }

    let mut frame = encode(&Message::Call {
        id: 12_345,
        object: 0,
        method: "add".into(),
        deadline_ms: None,
        refs: Vec::new(),
    })
    .unwrap()
    .to_vec();
    frame.extend_from_slice(&encode(&(3i64, -4i64)).unwrap());
    let bytes16 = encode(&vec![7u8; 16]).unwrap().to_vec();
    let bytes64k = encode(&vec![7u8; 64 << 10]).unwrap().to_vec();

    macro_rules! header_and_args {
        ($decode:ident) => {
            &|| {
                let (message, used) = $decode::<Message<'_>>(black_box(&frame));
                let args = $decode::<(i64, i64)>(black_box(&frame[used..]));
                black_box((message, args));
            }
        };
    }
    macro_rules! vec_u8 {
        ($decode:ident, $bytes:ident) => {
            &|| {
                black_box($decode::<Vec<u8>>(black_box(&$bytes)));
            }
        };
    }
    let calls = time::<2, 20_000>([header_and_args!(unwrapped), header_and_args!(limited)]);
    let vecs = time::<2, 20_000>([vec_u8!(unwrapped, bytes16), vec_u8!(limited, bytes16)]);
    let bigs = time::<2, 20>([vec_u8!(unwrapped, bytes64k), vec_u8!(limited, bytes64k)]);
    let names = [
        "borrowing decoder, no depth limit",
        "borrowing decoder + depth limit",
    ];
    for (i, name) in names.iter().enumerate() {
        println!(
            "{name:34} header + (i64, i64): {:6.1} ns   Vec<u8> of 16: {:6.1} ns   \
             Vec<u8> of 64 KiB: {:6.1} µs",
            calls[i],
            vecs[i],
            bigs[i] / 1000.0
        );
    }
}

#[test]
fn an_unknown_kind_from_a_newer_peer_is_other() {
    // bincode writes a unit variant as its index: 200 is no kind this version knows.
    let mut bytes = encode(&200u32).unwrap().to_vec();
    bytes.extend_from_slice(&encode("from the future").unwrap());
    let error: crate::error::RemoteError = decode(&bytes, 1024, 16).unwrap();
    assert_eq!(error.kind, crate::error::RemoteErrorKind::Other);
    assert_eq!(error.message, "from the future");
    let known = encode(&crate::error::RemoteErrorKind::Overloaded).unwrap();
    let back: crate::error::RemoteErrorKind = decode(&known, 1024, 16).unwrap();
    assert_eq!(back, crate::error::RemoteErrorKind::Overloaded);
}

#[test]
fn the_length_prefix_is_the_codecs() {
    for len in [0usize, 1, 255, 256, 65_535, 65_536, 4 * 1024 * 1024] {
        let payload = vec![7u8; len];
        let framed = one_frame(&payload, MAX_FRAME_LENGTH_CEILING).unwrap();
        assert_eq!(
            framed[..4],
            length_prefix(len),
            "prefix of a {len}-byte frame"
        );
        assert_eq!(framed[4..], payload[..]);
    }
}

/// Encodes `value` as a frame's payload, built in scratch memory ([`build_frame`]).
fn encode_frame<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    let (result, frame) = build_frame(|buf| encode_into(value, buf));
    result.map(|()| frame.into_bytes())
}

#[test]
fn frames_built_in_scratch_memory_are_independent() {
    // Many frames carved from the scratch buffer, more than it holds, some kept: each keeps
    // exactly what was written for it.
    let kept: Vec<(u64, Bytes)> = (0..5_000u64)
        .map(|i| {
            (
                i,
                encode_frame(&(i, "frame", vec![i as u8; (i % 97) as usize])).unwrap(),
            )
        })
        .collect();
    for (i, frame) in &kept {
        let value: (u64, String, Vec<u8>) = decode(frame, 1 << 20, 16).unwrap();
        assert_eq!(
            value,
            (*i, "frame".to_string(), vec![*i as u8; (*i % 97) as usize])
        );
    }
    // A frame larger than the scratch buffer, and a frame built while building one.
    let big = vec![1u8; 3 * SCRATCH_CAPACITY];
    assert_eq!(
        decode::<Vec<u8>>(&encode_frame(&big).unwrap(), 1 << 20, 16).unwrap(),
        big
    );
    let (inner, outer) = build_frame(|buf| {
        buf.extend_from_slice(b"outer");
        encode_frame("inner").unwrap()
    });
    assert_eq!(outer.as_slice(), b"outer");
    assert_eq!(decode::<String>(&inner, 1 << 20, 16).unwrap(), "inner");
}

/// Encode and decode errors read as sentences, never as bincode's debug form
/// (`OtherString("...")`, `UnexpectedEnd { additional: 1 }`).
#[test]
fn encode_and_decode_errors_are_in_words() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("this value refuses to be sent"))
        }
    }
    assert_eq!(
        encode(&Refuses).unwrap_err(),
        "this value refuses to be sent"
    );

    /// A sequence whose length serde does not know up front.
    struct Unsized;
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq((0..3u8).filter(|n| n % 2 == 0))
        }
    }
    let error = encode(&Unsized).unwrap_err();
    assert!(error.contains("collect it into a Vec"), "{error}");

    let error = decode::<bool>(&[2], 1024, 8).unwrap_err();
    assert_eq!(error, "a bool is 2, neither 0 nor 1");
    let error = decode::<u64>(&[0xfb], 1024, 8).unwrap_err();
    assert!(
        error.contains("the bytes end before the value does"),
        "{error}"
    );
    for error in [error, encode(&Refuses).unwrap_err()] {
        assert!(
            !error.contains("OtherString") && !error.contains(" { "),
            "{error}"
        );
    }
}

/// The deepest headers (a call with a deadline and a reference, an error answer) reach exactly
/// `HEADER_DEPTH` levels, decoded by serde (`codec::header` decodes the error of an error
/// answer by serde with this limit).
#[test]
fn headers_reach_header_depth_at_most() {
    use crate::error::{RemoteError, RemoteErrorKind};
    use crate::protocol::HEADER_DEPTH;
    let call = Message::Call {
        id: 1,
        object: 2,
        method: "m".into(),
        deadline_ms: Some(10_000),
        refs: vec![WireRef::SenderExports {
            id: 3,
            interface: "I".into(),
        }],
    };
    let error = Message::Error {
        id: 1,
        error: RemoteError::new(RemoteErrorKind::Panicked, "x"),
    };
    for header in [call, error] {
        let bytes = encode(&header).unwrap();
        assert_eq!(
            decode::<Message<'_>>(&bytes, 1024, HEADER_DEPTH).unwrap(),
            header
        );
        assert!(decode::<Message<'_>>(&bytes, 1024, HEADER_DEPTH - 1).is_err());
    }
}
