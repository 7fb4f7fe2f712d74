//! The one place that knows about bincode and about frame lengths.
//!
//! Frames are a 4-byte big-endian length followed by that many bytes
//! ([`LengthDelimitedCodec`]), with an explicit maximum length. Values inside frames are
//! bincode 2 (serde feature, standard configuration: little endian, variable-length integers).
//!
//! Every decode runs with a byte limit. Without one, a frame of a dozen bytes that declares a
//! sequence of 2^40 elements makes bincode try to allocate terabytes, and the allocation
//! failure aborts the process: no panic, nothing to catch. bincode's limit is a compile-time
//! constant, so [`decode`] picks the smallest of a few fixed limits that is at least the
//! configured frame limit (at most twice it; 4 MiB exactly for the default 4 MiB frames).

use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::LengthDelimitedCodec;

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
) -> Result<(T, usize), String> {
    bincode::serde::decode_from_slice(bytes, config().with_limit::<LIMIT>())
        .map_err(|e| e.to_string())
}

/// Decodes a `T` from the start of `bytes` with a byte limit of at least `limit` (see the
/// module docs); returns it and how many bytes it took.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<(T, usize), String> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match limit {
        l if l <= 64 * KIB => decode_limited::<T, { 64 * KIB }>(bytes),
        l if l <= MIB => decode_limited::<T, MIB>(bytes),
        l if l <= 4 * MIB => decode_limited::<T, { 4 * MIB }>(bytes),
        l if l <= 16 * MIB => decode_limited::<T, { 16 * MIB }>(bytes),
        l if l <= 64 * MIB => decode_limited::<T, { 64 * MIB }>(bytes),
        l if l <= 256 * MIB => decode_limited::<T, { 256 * MIB }>(bytes),
        l if l <= 1024 * MIB => decode_limited::<T, { 1024 * MIB }>(bytes),
        _ => decode_limited::<T, MAX_FRAME_LENGTH_CEILING>(bytes),
    }
}

/// Decodes exactly one `T` from `bytes`; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, String> {
    let (value, used) = decode_prefix(bytes, limit)?;
    if used != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = (42i64, String::from("hi"), vec![1u8, 2, 3]);
        let bytes = encode(&v).unwrap();
        let back: (i64, String, Vec<u8>) = decode(&bytes, 4 << 20).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn huge_declared_length_is_an_error_not_an_abort() {
        // A varint u64 length of 2^43: without a limit bincode would try to allocate 8 TiB.
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&(1u64 << 43).to_le_bytes());
        bytes.extend_from_slice(&[0, 0]);
        assert!(decode::<Vec<u8>>(&bytes, 4 << 20).is_err());
        assert!(decode::<String>(&bytes, 4 << 20).is_err());
        assert!(decode::<Vec<u64>>(&bytes, 4 << 20).is_err());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&7u32).unwrap().to_vec();
        bytes.push(0);
        assert!(decode::<u32>(&bytes, 1024).is_err());
    }
}
