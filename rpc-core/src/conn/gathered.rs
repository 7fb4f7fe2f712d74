//! The answers the reader of a `current_thread` runtime encodes in one burst, queued together.
//!
//! There the reader first-polls each handler as its call is routed (see `handlers`), and most
//! finish at once. Queued one by one, each such answer would be built in scratch memory, then
//! copied into the outbox: the queue's lock taken and released, the backlog and the server's memory
//! budget each counted. That is four locked instructions per answer (about 9 ns each on a 2-core
//! VM, where a 40-byte answer takes nanoseconds to encode), and two more for an answer too long to
//! be kept in place (`codec::built_frame`). Instead the reader encodes the answers of a burst one
//! after another into the thread's [`gather_buffer`], each behind its length prefix, and the outbox
//! takes them in one go when the burst ends, or sooner: once they fill [`SEND_AT`] bytes, or as
//! soon as anything else is queued on it from this thread (so nothing overtakes them), it is
//! flushed, or it closes (a handler that closes its connection loses none).
//!
//! Only values are gathered, and only while the outbox is not full (`Outbox::is_full`): a
//! value with references in it (its exports are committed as its frame is queued), one of
//! more than [`MAX_GATHERED`] bytes, one that does not encode, and an error answer take the
//! usual way (`handlers::try_answer`) instead, after the answers gathered before them.
//!
//! A call whose answer is gathered ends there, and its slot is free for the next call of the
//! burst; but it leaves the admission table only with the next call's admission, or when the
//! burst ends, whichever comes first (see `slot::SlotReturns`), by when its answer may be
//! queued, or even written (a burst that gathers 16 KiB of answers queues them, and one that
//! reads 64 KiB of frames writes what is queued). That the slot is freed before the answer is
//! queued, in the other case, is sound only on the reader's own thread on a `current_thread`
//! runtime: nothing else of the runtime runs until the reader waits for the socket, and the
//! outbox takes what it gathered before that; so no other task (a graceful shutdown waiting for
//! no call to be in flight, then for everything queued to be written) can see a call ended and
//! its answer not queued. Only a handler later in the same burst can:
//! [`Peer::queued_bytes`](crate::Peer::queued_bytes) does not count the answers gathered
//! before it. The other way round, a call whose answer is written may still count in
//! [`Peer::calls_in_flight`](crate::Peer::calls_in_flight), seen from another thread, until
//! its burst ends.

use std::panic::AssertUnwindSafe;

use super::refctx::encode_plain_into;
use super::shared::Shared;
use crate::codec;
use crate::dispatch::Answer;
use crate::io::gather_buffer;
use crate::protocol::Message;

/// An answer frame longer than this (header and value) takes the usual way: its encoding here
/// stops at this many bytes.
const MAX_GATHERED: usize = 4 * 1024;

/// Answers gathered up to this many bytes are queued at once, also in the middle of a burst.
const SEND_AT: usize = 16 * 1024;

/// What became of an answer offered to [`add`].
pub(crate) enum Added {
    /// Gathered: its call has ended.
    Yes,
    /// It takes the usual way (after the answers gathered before it: the outbox takes those
    /// before anything else queued from this thread).
    No,
    /// Encoding its value panicked: answer with that error instead (the usual way would only
    /// panic again).
    Panicked,
}

/// Encodes the answer `answer` of call `id` on `shared` after the answers gathered so far, if
/// it can be (see the module docs).
pub(crate) fn add(shared: &Shared, id: u64, answer: &Answer) -> Added {
    let outbox = &shared.outbox;
    if outbox.is_full() || shared.is_closed() {
        // It must wait for room, or it will never be sent: the usual way sees to both.
        return Added::No;
    }
    let max_frame = MAX_GATHERED.min(shared.config().max_frame_length);
    let (encoded, held) = gather_buffer::gather(outbox.gather_serial(), |frames| {
        let start = frames.len();
        let max_len = start + 4 + max_frame;
        frames.extend_from_slice(&[0; 4]);
        let header = Message::Answer {
            id,
            refs: Vec::new(),
        };
        let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            encode_plain_into(frames, &header, |buf| answer.write_within(buf, max_len))
        }));
        if let Ok(true) = encoded {
            let len = frames.len() - start - 4;
            frames[start..start + 4].copy_from_slice(&codec::length_prefix(len));
        } else {
            frames.truncate(start);
        }
        encoded
    });
    if shared.is_closed() {
        // Closed by the value's `Serialize` (which found the buffer out, in `gather`'s hands):
        // what was gathered is dropped now, not left for the thread's next burst.
        outbox.queue_gathered();
    }
    match encoded {
        Ok(true) => {
            if held >= SEND_AT {
                outbox.queue_gathered();
            }
            Added::Yes
        }
        Ok(false) => Added::No,
        Err(_) => Added::Panicked,
    }
}
