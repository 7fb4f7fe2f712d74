//! The one place that knows about bincode and about frame lengths.
//!
//! Frames are a 4-byte big-endian length followed by that many bytes
//! ([`LengthDelimitedCodec`]), with an explicit maximum length. Values inside frames are
//! bincode 2 (serde feature, standard configuration: little endian, variable-length integers).
//!
//! Everything decoded here comes from a peer that may be hostile, so every decode runs with
//! two limits, each against a way a few bytes could otherwise kill the whole process with no
//! panic and nothing to catch:
//!
//! - **A byte limit.** A frame of a dozen bytes can declare a sequence of 2^40 elements;
//!   bincode would try to allocate terabytes, and the allocation failure aborts the process.
//!   bincode's limit is a compile-time constant, so [`decode`] picks the smallest of a few
//!   fixed limits that is at least the configured frame limit (at most twice it; 4 MiB exactly
//!   for the default 4 MiB frames).
//! - **A nesting-depth limit.** bincode has none, and a recursive type (`enum Tree {
//!   Leaf(u64), Node(Box<Tree>) }`) is decoded by recursion: 20 KB of bytes saying `Node`
//!   twenty thousand times overflow the stack, which aborts the process. Every decode goes
//!   through the [`depth`] wrapper, which fails cleanly once the value is nested more than
//!   `max_depth` levels deep ([`Config::max_decode_depth`](crate::Config::max_decode_depth);
//!   see [`depth`] for what one level is). The default, [`DEFAULT_MAX_DECODE_DEPTH`] (128),
//!   is far deeper than any sensible message and decodes well within a 2 MiB stack (tokio's
//!   worker threads) even in a debug build.
//!
//! Frame headers are the exception: [`header`] reads and writes bincode's encoding of a
//! [`Message`](crate::protocol::Message) by hand, with no recursion, believing a length only
//! as far as the bytes after it could hold that much, and allocating for what it has read.

mod built_frame;
mod depth;
mod header;

pub(crate) use built_frame::{BuiltFrame, SCRATCH_CAPACITY, build_frame};

pub(crate) use header::{decode_header, encode_header};

use bincode::error::{DecodeError, EncodeError};
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Encoder, LengthDelimitedCodec};

/// The default of [`Config::max_decode_depth`](crate::Config::max_decode_depth), and the depth
/// limit of in-process calls (which have no configuration).
pub(crate) const DEFAULT_MAX_DECODE_DEPTH: usize = 128;

/// The largest frame length the 4-byte length prefix can express.
pub(crate) const MAX_FRAME_LENGTH_CEILING: usize = u32::MAX as usize;

/// A length-delimited codec (4-byte big-endian length) that refuses frames over `max_frame`.
pub(crate) fn frame_codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

/// `payload` as one frame (length prefix and bytes), for what is written before a connection
/// has an outbox: the hello, a refusal.
pub(crate) fn one_frame(payload: &[u8], max_frame: usize) -> std::io::Result<BytesMut> {
    let mut frame = BytesMut::new();
    frame_codec(max_frame).encode(Bytes::copy_from_slice(payload), &mut frame)?;
    Ok(frame)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `value` after whatever `dst` already holds.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
) -> Result<(), String> {
    bincode::serde::encode_into_writer(value, BufWriter(dst), config())
        .map_err(encode_error_message)
}

/// Encodes `value` after whatever `dst` already holds, giving up (`Err(None)`, with part of
/// it written) as soon as `dst` would hold more than `max_len` bytes: a value too long for
/// where it was to go costs at most that much of its encoding. `Err(Some(message))`: it does
/// not encode.
pub(crate) fn encode_within<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
    max_len: usize,
) -> Result<(), Option<String>> {
    let mut longer = false;
    let writer = LimitedWriter {
        dst,
        max_len,
        longer: &mut longer,
    };
    let encoded = bincode::serde::encode_into_writer(value, writer, config());
    if longer {
        // Also if a `Serialize` of the application's went on after a write was refused: what
        // was written is not the value.
        return Err(None);
    }
    encoded.map_err(|error| Some(encode_error_message(error)))
}

/// What [`LimitedWriter`] fails a write with past its `max_len`.
const LONGER: &str = "longer than the room left for it";

/// The text of an encode error, for a person. bincode's own `Display` of an encode error is
/// its debug form (`OtherString("...")`); a custom error (ours, such as the export limit's, or
/// a `Serialize` impl's) is its message alone, and the other cases say what cannot be sent.
fn encode_error_message(error: EncodeError) -> String {
    match error {
        EncodeError::OtherString(message) => message,
        EncodeError::Other(message) => message.to_owned(),
        EncodeError::Serde(bincode::serde::EncodeError::SequenceMustHaveLength) => {
            "a sequence of unknown length (an iterator serialized as it goes) cannot be sent; \
             collect it into a Vec first"
                .to_owned()
        }
        EncodeError::RefCellAlreadyBorrowed { type_name, .. } => {
            format!("a `{type_name}` was mutably borrowed while it was being sent")
        }
        EncodeError::LockFailed { type_name } => {
            format!("a `{type_name}` could not be locked to be sent (a thread panicked holding it)")
        }
        EncodeError::InvalidPathCharacters => {
            "a path that is not valid UTF-8 cannot be sent".to_owned()
        }
        EncodeError::InvalidSystemTime { .. } => {
            "a time before 1970-01-01 00:00 UTC cannot be sent".to_owned()
        }
        // Writing to memory neither runs out of room nor fails.
        other => format!("bincode could not encode it ({other})"),
    }
}

/// bincode's writer straight into a `BytesMut` (no `std::io::Write` in between: serde
/// writes many values a few bytes at a time: a `Vec<u8>` byte by byte).
struct BufWriter<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for BufWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// A [`BufWriter`] that takes `dst` to `max_len` bytes at most (a check per write, which an
/// encode with no limit does not pay).
struct LimitedWriter<'a> {
    dst: &'a mut BytesMut,
    max_len: usize,
    /// Set when a write is refused.
    longer: &'a mut bool,
}

impl bincode::enc::write::Writer for LimitedWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        if bytes.len() > self.max_len.saturating_sub(self.dst.len()) {
            *self.longer = true;
            return Err(EncodeError::Other(LONGER));
        }
        self.dst.extend_from_slice(bytes);
        Ok(())
    }
}

/// The 4-byte length prefix [`frame_codec`] writes before a payload of `len` bytes. The
/// frame queue writes it itself (`io::frame_queue`): before a small frame it copies, and
/// before a large one that goes out as it is. The tests check that it is the codec's.
pub(crate) fn length_prefix(len: usize) -> [u8; 4] {
    u32::try_from(len)
        .expect("frame lengths are checked against the 4-byte prefix's ceiling")
        .to_be_bytes()
}

/// Encodes `value` on its own.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    encode_into(value, &mut buf)?;
    Ok(buf.freeze())
}

fn decode_limited<'de, T: Deserialize<'de>, const LIMIT: usize>(
    bytes: &'de [u8],
    max_depth: usize,
) -> Result<(T, usize), String> {
    let config = config().with_limit::<LIMIT>();
    bincode::serde::seed_decode_from_slice(depth::Limited::new(max_depth), bytes, config)
        .map_err(decode_error_message)
}

/// The text of a decode error, for a person. bincode's own `Display` of a decode error is its
/// debug form (`UnexpectedEnd { additional: 1 }`); a custom error (ours, such as the depth
/// limit's, or a `Deserialize` impl's) is its message alone, and the usual signs of bytes
/// that are not the expected type say so in words.
fn decode_error_message(error: DecodeError) -> String {
    match error {
        DecodeError::OtherString(message) => message,
        DecodeError::Other(message) => message.to_owned(),
        DecodeError::UnexpectedEnd { .. } => {
            "the bytes end before the value does (they are not a value of the expected type)"
                .to_owned()
        }
        DecodeError::LimitExceeded => {
            "the value would take more memory than the frame limit (max_frame_length) allows"
                .to_owned()
        }
        DecodeError::Utf8 { .. } => "a string is not valid UTF-8".to_owned(),
        DecodeError::InvalidBooleanValue(byte) => format!("a bool is {byte}, neither 0 nor 1"),
        DecodeError::InvalidCharEncoding(_) => "a char is not a valid Unicode scalar".to_owned(),
        DecodeError::OutsideUsizeRange(n) => format!("{n} does not fit in a usize here"),
        DecodeError::ArrayLengthMismatch { required, found } => {
            format!("an array has {found} elements where {required} are expected")
        }
        DecodeError::InvalidIntegerType { .. } | DecodeError::NonZeroTypeIsZero { .. } => {
            "an integer is not encoded as the expected type".to_owned()
        }
        other => format!("the bytes are not a value of the expected type ({other})"),
    }
}

/// Decodes a `T` from the start of `bytes` with a byte limit of at least `limit` and a
/// nesting-depth limit of `max_depth` levels (see the module docs); returns it and how many
/// bytes it took.
pub(crate) fn decode_prefix<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limit: usize,
    max_depth: usize,
) -> Result<(T, usize), String> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match limit {
        l if l <= 64 * KIB => decode_limited::<T, { 64 * KIB }>(bytes, max_depth),
        l if l <= MIB => decode_limited::<T, MIB>(bytes, max_depth),
        l if l <= 4 * MIB => decode_limited::<T, { 4 * MIB }>(bytes, max_depth),
        l if l <= 16 * MIB => decode_limited::<T, { 16 * MIB }>(bytes, max_depth),
        l if l <= 64 * MIB => decode_limited::<T, { 64 * MIB }>(bytes, max_depth),
        l if l <= 256 * MIB => decode_limited::<T, { 256 * MIB }>(bytes, max_depth),
        l if l <= 1024 * MIB => decode_limited::<T, { 1024 * MIB }>(bytes, max_depth),
        _ => decode_limited::<T, MAX_FRAME_LENGTH_CEILING>(bytes, max_depth),
    }
}

/// Decodes exactly one `T` from `bytes` (limits as in [`decode_prefix`]); trailing bytes are
/// an error.
pub(crate) fn decode<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limit: usize,
    max_depth: usize,
) -> Result<T, String> {
    let (value, used) = decode_prefix(bytes, limit, max_depth)?;
    if used != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod within_tests {
    use super::*;

    /// `encode_within` writes what `encode_into` writes when it fits, gives up (without an
    /// error message) one byte short of that, counts what `dst` held before, and still says
    /// why a value does not encode.
    #[test]
    fn encode_within_stops_at_its_length_and_reports_errors() {
        let value: Vec<u8> = (0..100).collect();
        let mut whole = BytesMut::from(&b"head"[..]);
        encode_into(&value, &mut whole).unwrap();
        let fits = whole.len();

        let mut dst = BytesMut::from(&b"head"[..]);
        encode_within(&value, &mut dst, fits).unwrap();
        assert_eq!(dst, whole);

        let mut dst = BytesMut::from(&b"head"[..]);
        assert_eq!(encode_within(&value, &mut dst, fits - 1), Err(None));
        assert!(dst.len() < fits, "it wrote past its length: {}", dst.len());

        let mut dst = BytesMut::from(&b"head"[..]);
        assert_eq!(
            encode_within(&value, &mut dst, 2),
            Err(None),
            "dst held more already"
        );

        /// Writes 100 bytes, one at a time, ignoring the errors of the writes.
        struct Careless;
        impl Serialize for Careless {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                let mut tuple = s.serialize_tuple(100)?;
                for byte in 0..100u8 {
                    let _ = tuple.serialize_element(&byte);
                }
                tuple.end()
            }
        }
        let mut dst = BytesMut::new();
        assert_eq!(
            encode_within(&Careless, &mut dst, 50),
            Err(None),
            "a refused write counts even if the value's `Serialize` ignores it"
        );

        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("this value refuses to be sent"))
            }
        }
        let mut dst = BytesMut::new();
        assert_eq!(
            encode_within(&Refuses, &mut dst, 1024),
            Err(Some("this value refuses to be sent".to_owned()))
        );
    }
}
