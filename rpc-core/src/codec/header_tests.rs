//! The header codec against bincode's serde encoding of the same [`Message`]: the same bytes
//! out, the same messages (or an error from both) in.

use std::borrow::Cow;

use bytes::BytesMut;
use proptest::prelude::*;

use super::{decode_header, encode_header, header_len};
use crate::codec::{self, DEFAULT_MAX_DECODE_DEPTH};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::protocol::{Message, WireRef};

/// Integers at and around every width boundary of a variable-length integer, and any other.
fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0,
            1,
            250,
            251,
            252,
            253,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ]),
        any::<u64>(),
        0u64..300,
    ]
}

fn wire_ref() -> impl Strategy<Value = WireRef> {
    prop_oneof![
        (int(), ".{0,12}").prop_map(|(id, interface)| WireRef::SenderExports { id, interface }),
        int().prop_map(WireRef::ReceiverExports),
    ]
}

fn refs() -> impl Strategy<Value = Vec<WireRef>> {
    prop::collection::vec(wire_ref(), 0..4)
}

fn kind() -> impl Strategy<Value = RemoteErrorKind> {
    prop::sample::select(vec![
        RemoteErrorKind::NoSuchMethod,
        RemoteErrorKind::NoSuchObject,
        RemoteErrorKind::BadArguments,
        RemoteErrorKind::Panicked,
        RemoteErrorKind::Overloaded,
        RemoteErrorKind::ShuttingDown,
        RemoteErrorKind::BadAnswer,
        RemoteErrorKind::DeadlineExceeded,
        RemoteErrorKind::Other,
    ])
}

fn message() -> impl Strategy<Value = Message<'static>> {
    prop_oneof![
        (int(), int(), ".{0,300}", prop::option::of(int()), refs()).prop_map(
            |(id, object, method, deadline_ms, refs)| Message::Call {
                id,
                object,
                method: Cow::Owned(method),
                deadline_ms,
                refs,
            }
        ),
        (int(), refs()).prop_map(|(id, refs)| Message::Answer { id, refs }),
        (int(), kind(), ".{0,20}").prop_map(|(id, kind, message)| Message::Error {
            id,
            error: RemoteError::new(kind, message),
        }),
        int().prop_map(|id| Message::Cancel { id }),
        (int(), int()).prop_map(|(object, count)| Message::Decref {
            object,
            count: count as u32,
        }),
        int().prop_map(|nonce| Message::Ping { nonce }),
        int().prop_map(|nonce| Message::Pong { nonce }),
    ]
}

fn by_hand(message: &Message<'_>) -> Vec<u8> {
    let mut bytes = BytesMut::new();
    encode_header(message, &mut bytes).unwrap();
    bytes.to_vec()
}

/// What bincode's serde decoding makes of `bytes`, as the router decoded headers before.
fn by_serde(bytes: &[u8]) -> Result<(Message<'_>, usize), String> {
    codec::decode_prefix::<Message<'_>>(bytes, bytes.len(), DEFAULT_MAX_DECODE_DEPTH)
}

/// Both decoders agree on `bytes`: the same message and length, or both an error.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    match (decode_header(bytes, None), by_serde(bytes)) {
        (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs),
        (Err(_), Err(_)) => {}
        (ours, theirs) => {
            prop_assert!(false, "{bytes:?}: by hand {ours:?}, by serde {theirs:?}")
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encodes_the_bytes_bincode_does(message in message()) {
        prop_assert_eq!(by_hand(&message), codec::encode(&message).unwrap().to_vec());
    }

    #[test]
    fn counts_the_bytes_of_a_header_before_writing_them(message in message()) {
        // An error's header is its kind and id; serde writes the error after them.
        let written = match &message {
            Message::Error { id, .. } => by_hand(&Message::Cancel { id: *id }).len(),
            _ => by_hand(&message).len(),
        };
        prop_assert_eq!(header_len(&message), written);
    }

    #[test]
    fn keeps_what_the_buffer_held_and_adds_only_the_header(
        message in message(),
        before in prop::collection::vec(any::<u8>(), 0..200),
        capacity in 0usize..300,
    ) {
        let mut dst = BytesMut::with_capacity(capacity);
        dst.extend_from_slice(&before);
        encode_header(&message, &mut dst).unwrap();
        let mut expected = before.clone();
        expected.extend_from_slice(&codec::encode(&message).unwrap());
        prop_assert_eq!(dst.to_vec(), expected);
    }

    #[test]
    fn decodes_what_it_encodes_and_stops_at_its_end(
        message in message(),
        tail in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = by_hand(&message);
        let len = bytes.len();
        bytes.extend_from_slice(&tail);
        let (back, used) = decode_header(&bytes, None).unwrap();
        prop_assert_eq!(back, message);
        prop_assert_eq!(used, len);
    }

    #[test]
    fn agrees_with_bincode_on_damaged_headers(
        message in message(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = by_hand(&message);
        let mut damaged = bytes.clone();
        damaged[at.index(bytes.len())] = byte;
        agree(&damaged)?;
        agree(&bytes[..cut.index(bytes.len())])?;
        agree(&damaged[..cut.index(bytes.len())])?;
    }

    /// A known method name changes nothing but where a call's name comes from, whatever the
    /// bytes: the message's own name (leaked: a known name is `'static`), or another.
    #[test]
    fn decodes_the_same_with_a_known_name_as_without(
        message in message(),
        own in any::<bool>(),
        other in prop::sample::select(vec!["", "a", "ping", "pong", "calculate"]),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let known: &'static str = match &message {
            Message::Call { method, .. } if own => Box::leak(method.to_string().into_boxed_str()),
            _ => other,
        };
        let bytes = by_hand(&message);
        let mut damaged = bytes.clone();
        damaged[at.index(bytes.len())] = byte;
        for bytes in [&bytes[..], &damaged[..], &damaged[..cut.index(bytes.len())]] {
            prop_assert_eq!(decode_header(bytes, Some(known)), decode_header(bytes, None));
        }
    }

    #[test]
    fn agrees_with_bincode_on_any_bytes(
        kind in 0u8..9,
        rest in prop::collection::vec(
            prop_oneof![4 => 0u8..8, 1 => 248u8..=255, 1 => any::<u8>()],
            0..24,
        ),
    ) {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&rest);
        agree(&bytes)?;
    }
}

#[test]
fn a_call_header_borrows_its_method_name() {
    let bytes = by_hand(&Message::Call {
        id: 7,
        object: 0,
        method: Cow::Borrowed("ping"),
        deadline_ms: None,
        refs: Vec::new(),
    });
    assert_eq!(bytes, [0, 7, 0, 4, b'p', b'i', b'n', b'g', 0, 0]);
    let (message, used) = decode_header(&bytes, None).unwrap();
    assert_eq!(used, bytes.len());
    let Message::Call { method, .. } = message else {
        panic!("not a call: {message:?}");
    };
    assert!(matches!(method, Cow::Borrowed("ping")));
}

/// The method name the reader knows (the last call's) is taken for a call that brings its
/// bytes; any other name is read from the frame and its UTF-8 checked, as without one.
#[test]
fn a_known_method_name_is_taken_only_for_its_own_bytes() {
    static KNOWN: &str = "ping";
    fn method_of(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
        match decode_header(bytes, Some(KNOWN)) {
            Ok((Message::Call { method, .. }, used)) => {
                assert_eq!(used, bytes.len());
                Ok(method)
            }
            Ok((other, _)) => panic!("not a call: {other:?}"),
            Err(error) => Err(error),
        }
    }
    let ping = [0, 7, 0, 4, b'p', b'i', b'n', b'g', 0, 0];
    let Cow::Borrowed(name) = method_of(&ping).unwrap() else {
        panic!("the name was copied");
    };
    assert!(std::ptr::eq(name, KNOWN), "the known name is taken");
    let Cow::Borrowed(name) = method_of(&[0, 7, 0, 4, b'p', b'o', b'n', b'g', 0, 0]).unwrap()
    else {
        panic!("the name was copied");
    };
    assert_eq!(name, "pong");
    assert!(!std::ptr::eq(name, KNOWN));
    // A prefix, or a longer name, is not the known one.
    let pin = [0, 7, 0, 3, b'p', b'i', b'n', 0, 0];
    assert_eq!(method_of(&pin).unwrap(), "pin");
    let pings = [0, 7, 0, 5, b'p', b'i', b'n', b'g', b's', 0, 0];
    assert_eq!(method_of(&pings).unwrap(), "pings");
    // Not UTF-8: refused as ever.
    let error = method_of(&[0, 7, 0, 4, b'p', 0xff, b'n', b'g', 0, 0]).unwrap_err();
    assert!(error.contains("UTF-8"), "{error}");
}

#[test]
fn a_huge_declared_length_is_refused_without_allocating_it() {
    // An answer claiming u64::MAX references, and a call claiming a 4 GiB method name.
    let answer = [1, 9, 253, 255, 255, 255, 255, 255, 255, 255, 255];
    let call = [0, 9, 0, 252, 255, 255, 255, 255, b'x'];
    for bytes in [&answer[..], &call[..]] {
        let error = decode_header(bytes, None).unwrap_err();
        assert!(error.contains("ends early"), "{error}");
        assert!(by_serde(bytes).is_err());
    }
}

#[test]
fn an_error_of_a_kind_this_side_does_not_know_decodes_as_other() {
    // Message::Error, id 3, kind 200 (no such variant here), message "new".
    let bytes = [2, 3, 200, 3, b'n', b'e', b'w'];
    let (message, used) = decode_header(&bytes, None).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(
        message,
        Message::Error {
            id: 3,
            error: RemoteError::new(RemoteErrorKind::Other, "new"),
        }
    );
    assert_eq!(by_serde(&bytes).unwrap(), (message, used));
}

/// What reading and writing a call's header costs, by hand and by serde:
/// `cargo test --release -p rpc-core --lib header_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check; run it in release"]
fn header_cost() {
    use std::hint::black_box;
    use std::time::Instant;

    /// ns per call of `f`: the best of 100 runs of 20,000 calls.
    fn time(f: &mut dyn FnMut()) -> f64 {
        (0..100)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..20_000 {
                    f();
                }
                start.elapsed().as_nanos() as f64 / 20_000.0
            })
            .fold(f64::INFINITY, f64::min)
    }
    let call = Message::Call {
        id: 123_456,
        object: 0,
        method: Cow::Borrowed("ping"),
        deadline_ms: None,
        refs: Vec::new(),
    };
    let bytes = by_hand(&call);
    let mut buf = BytesMut::with_capacity(1 << 10);
    let mut encode = |by_hand: bool| {
        buf.clear();
        if by_hand {
            encode_header(black_box(&call), &mut buf).unwrap();
        } else {
            codec::encode_into(black_box(&call), &mut buf).unwrap();
        }
        black_box(&buf);
    };
    let encoded = [time(&mut || encode(true)), time(&mut || encode(false))];
    let decoded = [
        time(&mut || drop(black_box(decode_header(black_box(&bytes), None)))),
        time(&mut || drop(black_box(by_serde(black_box(&bytes))))),
    ];
    println!(
        "call header: encode by hand {:.1} ns, by serde {:.1} ns; \
         decode by hand {:.1} ns, by serde {:.1} ns",
        encoded[0], encoded[1], decoded[0], decoded[1]
    );
}

/// A 4 MiB answer header (the default frame limit) whose reference table claims as many
/// entries as the frame could hold, two bytes each, and whose first entry is not one. Read in
/// a child process of this test binary whose address space is limited to 60 MB (`ulimit -v`;
/// the binary starts in about 20): allocating the claimed table up front (32 bytes an entry,
/// 64 MiB) aborts the child, reading entry by entry fails cleanly on the first.
#[test]
fn a_table_claimed_to_fill_the_frame_is_not_allocated_before_it_is_read() {
    const CHILD: &str = "PBRS_HEADER_TABLE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let frame_len = 4 << 20;
        let claimed = (frame_len as u64 - 16) / 2;
        let mut bytes = vec![1u8, 9, 253];
        bytes.extend_from_slice(&claimed.to_le_bytes());
        bytes.resize(frame_len, 0xff);
        let error = decode_header(&bytes, None).unwrap_err();
        assert!(error.contains("marker byte 255"), "{error}");
        return;
    }
    let name = "codec::header::tests::a_table_claimed_to_fill_the_frame_is_not_allocated_before_it_is_read";
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 60000 && exec "$0" --exact "$1" --test-threads=1"#)
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the child failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran the test, not nothing.
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
}
