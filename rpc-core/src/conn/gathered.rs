//! [`Gathered`]: the answers the reader of a `current_thread` runtime encodes in one burst,
//! queued together.
//!
//! There the reader first-polls each handler as its call is routed (see `handlers`), and most
//! finish at once. Queued one by one, each such answer would be built in scratch memory shared
//! by many frames, then copied into the outbox: a shared buffer counted up and down, the
//! queue's lock taken and released, the backlog and the server's memory budget each counted.
//! That is six locked instructions per answer (about 9 ns each on a 2-core VM, where a 40-byte
//! answer takes nanoseconds to encode). Instead the reader encodes the answers of a burst one
//! after another into a buffer of its own, each behind its length prefix, and queues them in
//! one go when the burst ends, or sooner once they fill [`SEND_AT`] bytes.
//!
//! Only values are gathered, and only while the outbox is not full (`Outbox::is_full`): a
//! value with references in it (its exports are committed as its frame is queued), one of
//! more than [`MAX_GATHERED`] bytes, one that does not encode, and an error answer take the
//! usual way (`handlers::try_answer`) instead, after the answers gathered before them.
//!
//! A call's slot is freed as its answer is gathered (the next call of the burst may need it),
//! before the answer is queued. That is sound only on the reader's own thread on a
//! `current_thread` runtime: nothing else of the runtime runs until the reader waits for the
//! socket, and it queues what it gathered before that; so no one (a graceful shutdown waiting
//! for no call to be in flight, then for everything queued to be written) can see a call ended
//! and its answer not queued.

use std::panic::AssertUnwindSafe;

use bytes::BytesMut;

use super::refctx::encode_plain_into;
use super::shared::Shared;
use crate::codec;
use crate::dispatch::Answer;
use crate::protocol::Message;

/// An answer frame longer than this (header and value) takes the usual way: its encoding here
/// stops at this many bytes.
const MAX_GATHERED: usize = 4 * 1024;

/// Answers gathered up to this many bytes are queued at once, also in the middle of a burst.
const SEND_AT: usize = 16 * 1024;

/// Answers encoded and not yet queued, each behind its length prefix.
#[derive(Default)]
pub(crate) struct Gathered {
    frames: BytesMut,
}

/// What became of an answer offered to [`Gathered::add`].
pub(crate) enum Added {
    /// Gathered: its call has ended.
    Yes,
    /// It takes the usual way.
    No,
    /// Encoding its value panicked: answer with that error instead (the usual way would only
    /// panic again).
    Panicked,
}

impl Gathered {
    /// Encodes the answer `answer` of call `id` after the answers gathered so far, if it can
    /// be (see the module docs). Otherwise queues those, so that it follows them.
    pub(crate) fn add(&mut self, shared: &Shared, id: u64, answer: &Answer) -> Added {
        if shared.outbox.is_full() {
            // It must wait for room: the usual way does.
            self.send(shared);
            return Added::No;
        }
        let start = self.frames.len();
        let max_len = start + 4 + MAX_GATHERED.min(shared.config().max_frame_length);
        self.frames.extend_from_slice(&[0; 4]);
        let header = Message::Answer {
            id,
            refs: Vec::new(),
        };
        let frames = &mut self.frames;
        let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            encode_plain_into(frames, &header, |buf| answer.write_within(buf, max_len))
        }));
        if let Ok(true) = encoded {
            let len = self.frames.len() - start - 4;
            self.frames[start..start + 4].copy_from_slice(&codec::length_prefix(len));
            if self.frames.len() >= SEND_AT {
                self.send(shared);
            }
            return Added::Yes;
        }
        self.frames.truncate(start);
        self.send(shared);
        match encoded {
            Ok(_) => Added::No,
            Err(_) => Added::Panicked,
        }
    }

    /// Queues the answers gathered (it does not write them).
    pub(crate) fn send(&mut self, shared: &Shared) {
        if !self.frames.is_empty() {
            shared.outbox.queue_prefixed(&self.frames);
            self.frames.clear();
        }
    }
}
