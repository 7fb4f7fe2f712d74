//! The wire protocol, version 1.
//!
//! A connection is a stream of frames: a 4-byte big-endian length, then that many bytes
//! (at most [`Config::max_frame_length`](crate::Config::max_frame_length) bytes).
//!
//! **Handshake.** Both sides first send one 8-byte hello frame, `b"PBRS"`, the protocol
//! version as a big-endian `u16`, and two reserved zero bytes, then read the peer's. A wrong
//! magic or another version closes the connection with [`CallError::Protocol`] on both sides:
//! both sent their hello before reading, so both can tell. A server may send a *refusal*
//! instead of its hello (version [`REFUSAL_VERSION`], then a reason in UTF-8), e.g. a TLS
//! server to a plaintext client, and close.
//!
//! **Messages.** Every later frame starts with one bincode-encoded [`Message`]. A `Call` or an
//! `Answer` frame then carries its payload, the bincode encoding of the argument tuple or of
//! the return value, as the rest of the frame: payloads are neither copied nor re-encoded.
//!
//! **References.** An object reference inside a payload is written as a `u32` index into the
//! `refs` table of the frame's header, whose entries are [`WireRef`]s. The receiver resolves
//! the whole table as soon as the frame arrives, in frame order, before it reads any later
//! frame: a reference can never be released by a later `Decref` while it is still on its way
//! to the code that will decode it, and the references of an answer nobody waits for any
//! more are still counted and released.
//!
//! The protocol is symmetric: after the handshake either side may call objects the other
//! exported to it. Object ids resolve only in the table of the connection they were handed
//! out on; id [`ROOT_OBJECT`] is the root object of the listener (a server's root; a client
//! exports none). Request ids are chosen by the caller, unique per connection and direction;
//! answers may come in any order.
//!
//! [`CallError::Protocol`]: crate::CallError::Protocol

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::RemoteError;

/// The version this build speaks. Peers of another version are refused at the handshake.
pub const PROTOCOL_VERSION: u16 = 1;

/// The first four bytes of every hello.
pub const MAGIC: [u8; 4] = *b"PBRS";

/// The object id of a listener's root object.
pub const ROOT_OBJECT: u64 = 0;

/// The object id at which a server's connections export the lookup of sturdy URLs: its
/// method `lookup(secret: String) -> Option<reference>` answers the object registered under
/// `secret` (see [`SturdyUrl`](crate::SturdyUrl)).
pub const LOOKUP_OBJECT: u64 = u64::MAX;

/// The hello frame this build sends.
pub(crate) fn hello() -> [u8; 8] {
    let v = PROTOCOL_VERSION.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], 0, 0]
}

/// The version field of a refusal: a hello-shaped frame that a server sends instead of its
/// hello to say why it will not serve this connection (e.g. it requires TLS), followed by the
/// reason in UTF-8.
pub const REFUSAL_VERSION: u16 = u16::MAX;

/// A refusal frame carrying `reason` (see [`REFUSAL_VERSION`]).
pub(crate) fn refusal(reason: &str) -> Vec<u8> {
    let mut frame = MAGIC.to_vec();
    frame.extend_from_slice(&REFUSAL_VERSION.to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(reason.as_bytes());
    frame
}

/// Checks a peer's hello frame; the error says what was wrong.
pub(crate) fn check_hello(frame: &[u8]) -> Result<(), String> {
    if frame.len() >= 8 && frame[..4] == MAGIC && frame[4..6] == REFUSAL_VERSION.to_be_bytes() {
        let reason = String::from_utf8_lossy(&frame[8..]);
        return Err(format!("the server refused the connection: {reason}"));
    }
    if frame.len() != 8 || frame[..4] != MAGIC {
        return Err(format!(
            "the peer's first frame ({} bytes) is not a pbrs hello; is it a pbrs peer?",
            frame.len()
        ));
    }
    let version = u16::from_be_bytes([frame[4], frame[5]]);
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "the peer speaks pbrs protocol version {version}, this side speaks version \
             {PROTOCOL_VERSION}; run the same pbrs version on both sides"
        ));
    }
    Ok(())
}

/// How deeply a [`Message`] can be nested: 4 levels (a call's reference table, an error
/// answer's kind). Headers are read by hand (`codec::header`), with no recursion; only the
/// error inside an error answer is read by serde, with this depth limit (more than it needs)
/// whatever [`Config::max_decode_depth`](crate::Config::max_decode_depth) says: a low limit
/// meant for arguments must not make error answers undecodable.
pub(crate) const HEADER_DEPTH: usize = 4;

/// The header of every frame after the hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Call `method` on the caller's peer's object `object`; the frame's rest is the
    /// encoded argument tuple.
    Call {
        /// Request id, unique among the sender's calls in flight on this connection.
        id: u64,
        /// The object id, in the table of the receiving side.
        object: u64,
        /// The method name without its `remote_` prefix.
        #[serde(borrow)]
        method: Cow<'a, str>,
        /// Milliseconds the caller will wait, counted from when the call was sent.
        deadline_ms: Option<u64>,
        /// The references the arguments hold.
        refs: Vec<WireRef>,
    },
    /// The call `id` returned; the frame's rest is the encoded return value.
    Answer {
        /// The request id of the call.
        id: u64,
        /// The references the return value holds.
        refs: Vec<WireRef>,
    },
    /// The call `id` failed at the callee.
    Error {
        /// The request id of the call.
        id: u64,
        /// What went wrong.
        error: RemoteError,
    },
    /// The caller no longer wants the answer to call `id`: drop the handler.
    Cancel {
        /// The request id of the call.
        id: u64,
    },
    /// The sender dropped `count` references to object `object` it had received.
    Decref {
        /// The object id, in the table of the receiving side.
        object: u64,
        /// How many references were dropped.
        count: u32,
    },
    /// Keepalive probe; answer with a `Pong` of the same nonce.
    Ping {
        /// Echoed back in the `Pong`.
        nonce: u64,
    },
    /// Keepalive answer.
    Pong {
        /// The nonce of the `Ping`.
        nonce: u64,
    },
}

impl Message<'_> {
    /// The message with its method name (the only part it may borrow from the bytes it was
    /// decoded from) copied: a `Message` decoded from a buffer that is about to go away.
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Call {
                id,
                object,
                method,
                deadline_ms,
                refs,
            } => Message::Call {
                id,
                object,
                method: Cow::Owned(method.into_owned()),
                deadline_ms,
                refs,
            },
            Message::Answer { id, refs } => Message::Answer { id, refs },
            Message::Error { id, error } => Message::Error { id, error },
            Message::Cancel { id } => Message::Cancel { id },
            Message::Decref { object, count } => Message::Decref { object, count },
            Message::Ping { nonce } => Message::Ping { nonce },
            Message::Pong { nonce } => Message::Pong { nonce },
        }
    }
}

/// One entry of a frame's reference table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireRef {
    /// An object the sender exports, by its id in the sender's table, and the name of its
    /// remote trait: the receiver gets a proxy that calls it over this connection, and refuses
    /// it where a reference to another trait is expected.
    SenderExports {
        /// The object's id in the sender's export table.
        id: u64,
        /// The name of the object's remote trait.
        interface: String,
    },
    /// An object the receiver exported earlier, by its id in the receiver's table: it arrives
    /// as the receiver's own object.
    ReceiverExports(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        assert!(check_hello(&hello()).is_ok());
        let mut other = hello();
        other[5] ^= 1;
        assert!(check_hello(&other).unwrap_err().contains("version"));
        assert!(
            check_hello(b"GET / HT")
                .unwrap_err()
                .contains("not a pbrs hello")
        );
    }
}
