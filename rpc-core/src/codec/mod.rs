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

mod depth;

use bincode::error::DecodeError;
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
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
    bincode::serde::encode_into_writer(value, BufWriter(dst), config()).map_err(|e| e.to_string())
}

/// bincode's writer straight into a `BytesMut` (no `std::io::Write` in between: serde
/// writes many values a few bytes at a time).
struct BufWriter<'a>(&'a mut BytesMut);

impl bincode::enc::write::Writer for BufWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Encodes `value` on its own.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    let mut buf = BytesMut::new();
    encode_into(value, &mut buf)?;
    Ok(buf.freeze())
}

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<(T, usize), String> {
    let mut reader = SliceReader(bytes);
    let mut decoder =
        bincode::serde::OwnedSerdeDecoder::from_reader(&mut reader, config().with_limit::<LIMIT>());
    let value =
        depth::deserialize_limited(decoder.as_deserializer(), max_depth).map_err(error_message)?;
    Ok((value, bytes.len() - reader.0.len()))
}

/// The text of a decode error. A custom error (ours, such as the depth limit's, or a
/// `Deserialize` impl's) is its message alone, not bincode's `OtherString("...")`.
fn error_message(error: DecodeError) -> String {
    match error {
        DecodeError::OtherString(message) => message,
        other => other.to_string(),
    }
}

/// bincode's reader over a slice; what is left of the slice tells how much was read.
struct SliceReader<'a>(&'a [u8]);

impl bincode::de::read::Reader for SliceReader<'_> {
    #[inline(always)]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), DecodeError> {
        match self.0.split_at_checked(bytes.len()) {
            Some((head, rest)) => {
                bytes.copy_from_slice(head);
                self.0 = rest;
                Ok(())
            }
            None => Err(DecodeError::UnexpectedEnd {
                additional: bytes.len() - self.0.len(),
            }),
        }
    }

    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.0.get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
}

/// Decodes a `T` from the start of `bytes` with a byte limit of at least `limit` and a
/// nesting-depth limit of `max_depth` levels (see the module docs); returns it and how many
/// bytes it took.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
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
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
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
