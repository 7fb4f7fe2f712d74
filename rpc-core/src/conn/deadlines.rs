//! One timer for the deadlines of every call this side made on a connection.
//!
//! A call with a deadline registers it with its entry in the pending table, at its first poll;
//! nothing else happens per call. A call made while others wait for their answers (a
//! pipeline refilled as answers come) does not read the clock: it registers its timeout, and
//! this task, told by the first of them, reads the clock once for all those registered since
//! ([`PendingTable::stamp`](super::outgoing::PendingTable::stamp)), as soon as it runs after
//! them. Each such call's timeout thus counts from a little after its first poll, never
//! before: as much after as the runtime takes to run this task, which is more if a task holds
//! up the runtime meanwhile (a task that blocks its `current_thread` runtime for a second
//! makes those calls' deadlines a second later, as it makes every timer of the runtime late).
//! (A read of the clock costs about 28 ns on the 2-core VM: 3 % of a call at 64 in flight.)
//!
//! This task sleeps until the earliest deadline the table knows of; when it wakes it fails the calls whose deadline has passed with a `Call` timeout (each
//! call, when it sees that, cancels itself at the callee if it was sent), and sleeps until the
//! next deadline. A call registered with an earlier deadline than the one it sleeps until
//! wakes it.
//!
//! With every call given the same timeout (the connection's default), a new call's deadline is
//! never the earliest while others wait, and calls answered in time leave nothing to do: the
//! task wakes about once per timeout, finds nothing due, and sleeps again. A timer per call
//! (registered in tokio's timer wheel, its waker cloned, removed again) cost about 7 % of the
//! CPU of a call at 64 in flight.

use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::lifecycle::lock;
use super::shared::Shared;
use crate::error::{CallError, TimeoutKind};

/// Fails the calls of `shared` whose deadline passes, until the connection closes.
pub(crate) async fn expire_calls(shared: Arc<Shared>) {
    let closed = shared.lifecycle.token().clone();
    // One timer, moved when the earliest deadline does (rarely: see the module docs).
    let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut armed: Option<Instant> = None;
    loop {
        let next = {
            let mut pending = lock(&shared.pending);
            if pending.has_unstamped() {
                pending.stamp(Instant::now());
            }
            pending.earliest()
        };
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at);
            }
            armed = next;
        }
        tokio::select! {
            biased;
            _ = closed.cancelled() => return,
            // An earlier deadline was registered (or one was, while none was known), or calls
            // wait for a stamp.
            _ = shared.deadline_moved.notified() => continue,
            _ = timer.as_mut(), if armed.is_some() => armed = None,
        }
        let now = Instant::now();
        // Each caller puts its own timeout in the error, and tells the callee to stop if the
        // call was sent.
        let (expired, waiting) = {
            let mut pending = lock(&shared.pending);
            let timeout = || CallError::timeout(TimeoutKind::Call, Duration::ZERO);
            (pending.expire(now, timeout), pending.len())
        };
        expired.into_iter().for_each(Waker::wake);
        // Each look scans every waiting call: with many waiting on a peer that does not answer,
        // and deadlines spread out, looks are spaced by a microsecond per 10 calls waiting (10 ms
        // for 100,000), so that the scans cost at most about 10 million entries a second. A
        // deadline is then met that much late at most.
        let pause = Duration::from_micros(u64::try_from(waiting / 10).unwrap_or(u64::MAX));
        if !pause.is_zero() {
            tokio::select! {
                _ = closed.cancelled() => return,
                _ = tokio::time::sleep_until(now + pause) => {}
            }
        }
    }
}
