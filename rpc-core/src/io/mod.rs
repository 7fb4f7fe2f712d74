//! Bytes in and out of one transport: the [`outbox`] that batches writes and bounds what is
//! queued for the peer (its frames kept in a [`frame_queue`]), the [`frame_reader`] that times and budgets incoming frames, the
//! [`budget`] shared by a server's connections, the keepalive's [`liveness`] clock, and how the
//! writer waits for callers on other threads ([`catch_up`]).
//!
//! Nothing here knows what a frame means; the connection layer (`conn`) does.

pub(crate) mod budget;
pub(crate) mod catch_up;
pub(crate) mod frame_queue;
pub(crate) mod frame_reader;
pub(crate) mod gather_buffer;
pub(crate) mod liveness;
pub(crate) mod outbox;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts one waiter while alive, so that whoever wakes waiters can skip the notify when no
/// one waits.
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(crate) fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
