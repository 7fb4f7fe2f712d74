//! The frame header ([`Message`]) in bincode's standard encoding, written and read by hand.
//!
//! Every frame after the hello starts with a header, so its encoding is on the path of every
//! call twice (the call and its answer). Going through serde costs a visitor per field and
//! the [`depth`](super::depth) wrapper around each of them: about 500 instructions to read a
//! call's header, where the bytes are a handful of integers. This module writes and reads
//! exactly the bytes bincode's serde encoding of a `Message` has (little endian,
//! variable-length integers), field by field: the wire format stays bincode's, and the unit
//! tests check, on arbitrary messages and arbitrary bytes, that both ways agree with bincode.
//!
//! Only the error inside [`Message::Error`] still goes through serde: its kind decodes an
//! unknown variant as [`RemoteErrorKind::Other`](crate::RemoteErrorKind::Other), and it is
//! not on the path of a call that succeeds.
//!
//! In bincode's variable-length integers, a value up to 250 is one byte; a larger one is a
//! marker byte (251, 252 or 253) and then the value as a little-endian `u16`, `u32` or `u64`,
//! whichever is the smallest that holds it. A decoder takes any of the widths that fit the
//! type (not only the smallest). A length (`usize`) is a `u64`; an `Option` is a byte, 0 or 1,
//! before its value; an enum is its variant index (a `u32`) before its fields.

use std::borrow::Cow;

use bytes::BytesMut;

use crate::protocol::{HEADER_DEPTH, Message, WireRef};

const U16_MARKER: u8 = 251;
const U32_MARKER: u8 = 252;
const U64_MARKER: u8 = 253;

// The variant indices of `Message` and `WireRef`, in declaration order (serde's and bincode's).
const CALL: u32 = 0;
const ANSWER: u32 = 1;
const ERROR: u32 = 2;
const CANCEL: u32 = 3;
const DECREF: u32 = 4;
const PING: u32 = 5;
const PONG: u32 = 6;
const SENDER_EXPORTS: u32 = 0;
const RECEIVER_EXPORTS: u32 = 1;

/// Room made for a reference table before its entries are read; it grows as they are.
const FIRST_REFS: usize = 16;

/// Writes `message` after whatever `dst` already holds.
pub(crate) fn encode_header(message: &Message<'_>, dst: &mut BytesMut) -> Result<(), String> {
    let start = dst.len();
    let len = header_len(message);
    let mut head = Head::open(dst, len);
    // What serde writes after the header: an error's body.
    let mut body = None;
    match message {
        Message::Call {
            id,
            object,
            method,
            deadline_ms,
            refs,
        } => {
            head.put(u64::from(CALL));
            head.put(*id);
            head.put(*object);
            head.put_str(method);
            match deadline_ms {
                None => head.put(0),
                Some(ms) => {
                    head.put(1);
                    head.put(*ms);
                }
            }
            head.put_refs(refs);
        }
        Message::Answer { id, refs } => {
            head.put(u64::from(ANSWER));
            head.put(*id);
            head.put_refs(refs);
        }
        Message::Error { id, error } => {
            head.put(u64::from(ERROR));
            head.put(*id);
            body = Some(error);
        }
        Message::Cancel { id } => {
            head.put(u64::from(CANCEL));
            head.put(*id);
        }
        Message::Decref { object, count } => {
            head.put(u64::from(DECREF));
            head.put(*object);
            head.put(u64::from(*count));
        }
        Message::Ping { nonce } => {
            head.put(u64::from(PING));
            head.put(*nonce);
        }
        Message::Pong { nonce } => {
            head.put(u64::from(PONG));
            head.put(*nonce);
        }
    }
    // What was written, should a miscount slip past the tests: never a cut or padded frame.
    let written = head.len;
    debug_assert_eq!(written, len, "the header's length, counted first");
    dst.truncate(start + written);
    match body {
        Some(error) => super::encode_into(error, dst),
        None => Ok(()),
    }
}

/// How many bytes `message`'s header takes (the error of [`Message::Error`] aside, which serde
/// writes after it).
fn header_len(message: &Message<'_>) -> usize {
    // Every kind of message and of reference, and an `Option`'s tag, is one byte.
    let string = |s: &str| int_len(s.len() as u64) + s.len();
    let refs = |refs: &[WireRef]| -> usize {
        let entry = |wire_ref: &WireRef| match wire_ref {
            WireRef::SenderExports { id, interface } => 1 + int_len(*id) + string(interface),
            WireRef::ReceiverExports(id) => 1 + int_len(*id),
        };
        int_len(refs.len() as u64) + refs.iter().map(entry).sum::<usize>()
    };
    match message {
        Message::Call {
            id,
            object,
            method,
            deadline_ms,
            refs: r,
        } => {
            let deadline = 1 + deadline_ms.map_or(0, int_len);
            1 + int_len(*id) + int_len(*object) + string(method) + deadline + refs(r)
        }
        Message::Answer { id, refs: r } => 1 + int_len(*id) + refs(r),
        Message::Error { id, .. } | Message::Cancel { id } => 1 + int_len(*id),
        Message::Decref { object, count } => 1 + int_len(*object) + int_len(u64::from(*count)),
        Message::Ping { nonce } | Message::Pong { nonce } => 1 + int_len(*nonce),
    }
}

/// How many bytes `value` takes as a variable-length integer.
fn int_len(value: u64) -> usize {
    if value <= 250 {
        1
    } else if value <= u64::from(u16::MAX) {
        3
    } else if value <= u64::from(u32::MAX) {
        5
    } else {
        9
    }
}

/// A header being written at the end of a buffer: as many zeros as it takes are added at once
/// (a copy of a fixed size, [`Head::ROOM`], unless it takes more), its bytes are written into
/// them, and what is left of them is cut off at the end. No copy of a few bytes of a size known
/// only at run time is on the way but a string's, and no bytes are gathered on the stack and
/// then copied (a wide read of fresh narrow writes, which stalls).
struct Head<'a> {
    /// The room added for the header.
    room: &'a mut [u8],
    /// The header's bytes in it so far.
    len: usize,
}

impl<'a> Head<'a> {
    /// The room added for any header that fits in it: one fixed-size copy of zeros.
    const ROOM: usize = 64;

    /// Room for a header of `len` bytes after what `dst` holds.
    fn open(dst: &'a mut BytesMut, len: usize) -> Head<'a> {
        let start = dst.len();
        if len <= Head::ROOM {
            dst.extend_from_slice(&[0; Head::ROOM]);
        } else {
            dst.resize(start + len, 0);
        }
        Head {
            room: &mut dst[start..],
            len: 0,
        }
    }

    /// Puts `value` as a variable-length integer.
    #[inline(always)]
    fn put(&mut self, value: u64) {
        let at = self.len;
        let room = &mut *self.room;
        self.len = at
            + if value <= 250 {
                room[at] = value as u8;
                1
            } else if let Ok(value) = u16::try_from(value) {
                room[at] = U16_MARKER;
                room[at + 1..at + 3].copy_from_slice(&value.to_le_bytes());
                3
            } else if let Ok(value) = u32::try_from(value) {
                room[at] = U32_MARKER;
                room[at + 1..at + 5].copy_from_slice(&value.to_le_bytes());
                5
            } else {
                room[at] = U64_MARKER;
                room[at + 1..at + 9].copy_from_slice(&value.to_le_bytes());
                9
            };
    }

    /// Puts `s`, its length first.
    fn put_str(&mut self, s: &str) {
        self.put(s.len() as u64);
        let at = self.len;
        self.room[at..at + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
    }

    /// Puts the reference table `refs`.
    fn put_refs(&mut self, refs: &[WireRef]) {
        self.put(refs.len() as u64);
        for wire_ref in refs {
            match wire_ref {
                WireRef::SenderExports { id, interface } => {
                    self.put(u64::from(SENDER_EXPORTS));
                    self.put(*id);
                    self.put_str(interface);
                }
                WireRef::ReceiverExports(id) => {
                    self.put(u64::from(RECEIVER_EXPORTS));
                    self.put(*id);
                }
            }
        }
    }
}

/// Reads the header at the start of `bytes`; returns it and how many bytes it took. The
/// method name of a call borrows from `bytes`, or is `known` when it is those very bytes: a
/// name the caller saw before (the last call's, as the object declares it), taken without
/// checking its UTF-8 again. A length is believed only as far as the bytes after it could hold
/// that much, and nothing is allocated for what has not been read: a reference table grows as
/// its entries are read (see [`Input::refs`]).
pub(crate) fn decode_header<'a>(
    bytes: &'a [u8],
    known: Option<&'static str>,
) -> Result<(Message<'a>, usize), String> {
    let mut input = Input { bytes, at: 0 };
    let message = match input.u32() {
        Ok(ERROR) => {
            let id = input.u64().map_err(|bad| bad.to_string())?;
            let rest = &bytes[input.at..];
            let (error, used) = super::decode_prefix(rest, rest.len(), HEADER_DEPTH)?;
            input.at += used;
            Ok(Message::Error { id, error })
        }
        Ok(kind) => input.message(kind, known),
        Err(bad) => Err(bad),
    };
    match message {
        Ok(message) => Ok((message, input.at)),
        Err(bad) => Err(bad.to_string()),
    }
}

/// Why a header did not decode.
#[derive(Debug, Clone, Copy)]
enum Bad {
    EndsEarly,
    Marker(u8),
    Kind(u32),
    ReferenceKind(u32),
    OptionTag(u8),
    Utf8,
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::EndsEarly => write!(f, "the header ends early"),
            Bad::Marker(byte) => write!(f, "an integer has the invalid marker byte {byte}"),
            Bad::Kind(kind) => write!(f, "unknown message kind {kind}"),
            Bad::ReferenceKind(kind) => write!(f, "unknown reference kind {kind}"),
            Bad::OptionTag(tag) => write!(f, "an option's tag is {tag}, neither 0 nor 1"),
            Bad::Utf8 => write!(f, "a string is not valid UTF-8"),
        }
    }
}

/// The bytes of a header and how far they are read.
struct Input<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    /// The rest of a message of kind `kind` (any but an error).
    fn message(&mut self, kind: u32, known: Option<&'static str>) -> Result<Message<'a>, Bad> {
        Ok(match kind {
            CALL => Message::Call {
                id: self.u64()?,
                object: self.u64()?,
                method: Cow::Borrowed(self.str(known)?),
                deadline_ms: match self.byte()? {
                    0 => None,
                    1 => Some(self.u64()?),
                    other => return Err(Bad::OptionTag(other)),
                },
                refs: self.refs()?,
            },
            ANSWER => Message::Answer {
                id: self.u64()?,
                refs: self.refs()?,
            },
            CANCEL => Message::Cancel { id: self.u64()? },
            DECREF => Message::Decref {
                object: self.u64()?,
                count: self.u32()?,
            },
            PING => Message::Ping { nonce: self.u64()? },
            PONG => Message::Pong { nonce: self.u64()? },
            other => return Err(Bad::Kind(other)),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let taken = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or(Bad::EndsEarly)?;
        self.at += n;
        Ok(taken)
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, Bad> {
        let byte = *self.bytes.get(self.at).ok_or(Bad::EndsEarly)?;
        self.at += 1;
        Ok(byte)
    }

    /// A variable-length integer of at most `max_marker`'s width.
    #[inline(always)]
    fn varint(&mut self, max_marker: u8) -> Result<u64, Bad> {
        let marker = self.byte()?;
        Ok(match marker {
            0..=250 => u64::from(marker),
            U16_MARKER => u64::from(u16::from_le_bytes(self.array()?)),
            U32_MARKER if max_marker >= U32_MARKER => u64::from(u32::from_le_bytes(self.array()?)),
            U64_MARKER if max_marker >= U64_MARKER => u64::from_le_bytes(self.array()?),
            _ => return Err(Bad::Marker(marker)),
        })
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    #[inline(always)]
    fn u64(&mut self) -> Result<u64, Bad> {
        self.varint(U64_MARKER)
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, Bad> {
        Ok(self.varint(U32_MARKER)? as u32)
    }

    /// A length, believed only as far as what is left could hold `min_each` bytes per unit.
    #[inline(always)]
    fn len(&mut self, min_each: usize) -> Result<usize, Bad> {
        let len = self.u64()?;
        let left = self.bytes.len() - self.at;
        match usize::try_from(len) {
            Ok(len) if len.checked_mul(min_each).is_some_and(|need| need <= left) => Ok(len),
            _ => Err(Bad::EndsEarly),
        }
    }

    /// A string: `known` if it is its bytes (comparing them costs a fifth of checking their
    /// UTF-8 for a short name), else checked. Inlined: called for references' interfaces too,
    /// it was not inlined into a call's decoding, 35 instructions more per call (callgrind).
    #[inline(always)]
    fn str(&mut self, known: Option<&'static str>) -> Result<&'a str, Bad> {
        let len = self.len(1)?;
        let bytes = self.take(len)?;
        match known {
            Some(name) if name.as_bytes() == bytes => Ok(name),
            _ => std::str::from_utf8(bytes).map_err(|_| Bad::Utf8),
        }
    }

    fn refs(&mut self) -> Result<Vec<WireRef>, Bad> {
        if self.bytes.get(self.at) == Some(&0) {
            // None, as in most frames.
            self.at += 1;
            return Ok(Vec::new());
        }
        // Each entry takes at least two bytes: its variant and an id.
        let len = self.len(2)?;
        // Not `len` up front: an entry takes 2 bytes on the wire and 32 in memory, so a table
        // said to fill the frame would be 16 times the frame before its first entry is read.
        let mut refs = Vec::with_capacity(len.min(FIRST_REFS));
        for _ in 0..len {
            refs.push(match self.u32()? {
                SENDER_EXPORTS => WireRef::SenderExports {
                    id: self.u64()?,
                    interface: self.str(None)?.to_owned(),
                },
                RECEIVER_EXPORTS => WireRef::ReceiverExports(self.u64()?),
                other => return Err(Bad::ReferenceKind(other)),
            });
        }
        Ok(refs)
    }
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
