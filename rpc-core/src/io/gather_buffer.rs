//! The thread's buffer of gathered frames: small frames, each behind its length prefix, held
//! for one outbox until it takes them all at once.
//!
//! The reader of a `current_thread` runtime gathers the answers of a burst here (see
//! `conn::gathered`, which encodes them) instead of queueing them one by one. One buffer per
//! thread serves every connection: a reader gathers only while it runs its burst, which never
//! yields, and the outbox takes what it gathered before the burst ends. The outbox also takes
//! them first whenever anything else is queued on it, it is flushed, or it closes, from this
//! thread: a frame queued in the middle of a burst (an error answer, a pong, a call a handler
//! makes) never overtakes the answers gathered before it, and a handler that closes its
//! connection does not lose them.
//!
//! The buffer names its outbox by a serial number that no other outbox ever has (an address
//! could be used again by a later outbox). Frames of an outbox that did not take them, found
//! when another outbox gathers, are dropped, never sent elsewhere: the answers of a burst on a
//! connection closed from another thread meanwhile (they would not have been written anyway).
//!
//! While a frame is being gathered the buffer is out of the thread-local, in the hands of the
//! code encoding it (the application's `Serialize` runs there): a frame that code queues on the
//! same connection (a decref, say) goes before the answers gathered earlier in the burst, and
//! if that code closes the connection, those answers are dropped with the rest.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;

/// A buffer that held a burst larger than this is not kept once emptied.
const KEEP: usize = 64 * 1024;

/// The next outbox's serial number (0 names none).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The outbox the frames held are for; 0 while none are held. Looked at by every outbox
    /// that queues or flushes on this thread: one load (a `const` thread-local needs no
    /// first-use check).
    static OWNER: Cell<u64> = const { Cell::new(0) };
    /// The frames, in memory kept from burst to burst (taken out while frames are gathered).
    static FRAMES: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// A serial number for a new outbox, never given out again.
pub(super) fn new_owner() -> u64 {
    NEXT_OWNER.fetch_add(1, Ordering::Relaxed)
}

/// Runs `gather` on the buffer of frames held for `owner`, which it appends to (and leaves
/// whole: a frame it started and gave up on, it truncates). Returns what `gather` returned and
/// how many bytes are held for `owner` after it.
///
/// The buffer is taken out of the thread-local while `gather` runs (the application's
/// `Serialize` may run there): anything that looks for it meanwhile finds nothing held.
pub(crate) fn gather<R>(owner: u64, gather: impl FnOnce(&mut BytesMut) -> R) -> (R, usize) {
    let mut frames = take_frames().unwrap_or_default();
    let held = OWNER.get();
    if held != owner && held != 0 {
        tracing::debug!("frames gathered for a connection closed meanwhile were dropped");
        frames.clear();
    }
    let result = gather(&mut frames);
    let len = frames.len();
    OWNER.set(if len == 0 { 0 } else { owner });
    // Not put back only if the thread is exiting (its thread-locals are being destroyed).
    let _ = FRAMES.try_with(|cell| cell.set(Some(frames)));
    (result, len)
}

/// `true` if frames are held for `owner`.
#[inline]
pub(super) fn holds(owner: u64) -> bool {
    OWNER.get() == owner
}

/// Hands the frames held for `owner`, if any, to `take`, and empties the buffer.
#[inline]
pub(super) fn take(owner: u64, take: impl FnOnce(&[u8])) {
    if holds(owner) {
        take_held(take);
    }
}

fn take_held(take: impl FnOnce(&[u8])) {
    OWNER.set(0);
    let Some(mut frames) = take_frames() else {
        // Out in `gather`'s hands (see the module docs), or the thread is exiting.
        return;
    };
    take(&frames);
    if frames.capacity() > KEEP {
        frames = BytesMut::new();
    } else {
        frames.clear();
    }
    let _ = FRAMES.try_with(|cell| cell.set(Some(frames)));
}

/// The buffer, taken out of the thread-local (`None` while `gather` has it, or once the
/// thread's thread-locals are being destroyed: a flush from another one's destructor then
/// finds nothing, rather than failing).
fn take_frames() -> Option<BytesMut> {
    FRAMES.try_with(Cell::take).ok().flatten()
}
