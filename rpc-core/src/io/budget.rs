//! [`MemoryBudget`]: bytes held over many connections (frames arriving, frames queued), with
//! a limit that large frames wait for.
//!
//! Every connection of a server charges one shared budget: the declared length of a frame
//! that has started to arrive, until it has arrived whole, and every byte queued for a peer,
//! until it is written. Small amounts are always let through (so small calls keep being
//! served however busy the budget is) and may take it past its limit; a large incoming frame,
//! and a call or answer about to be queued, wait until the budget is below its limit again.
//! The figures (`in_use`, `peak`) are what the tests read instead of guessing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use super::Waiting;

/// Frames longer than this wait for the budget (incoming, before they are read; outgoing calls
/// and answers, before they are queued); shorter ones never do.
pub(crate) const LARGE_FRAME: usize = 64 * 1024;

/// A frame that cannot wait would take the queue past the output budget.
#[derive(Debug)]
pub(crate) struct Overflow {
    pub(crate) queued: usize,
    pub(crate) budget: usize,
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the peer keeps sending but does not read what it is sent: {} bytes are queued for \
             it, and the output budget is {} bytes",
            self.queued, self.budget
        )
    }
}

/// A byte budget shared by the connections of one server (or the one of a client).
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    in_use: AtomicUsize,
    peak: AtomicUsize,
    /// How many tasks wait for room (so that releases skip the notify otherwise).
    waiters: AtomicUsize,
    room: Notify,
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            in_use: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            room: Notify::new(),
        })
    }

    /// The limit in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// The most bytes ever charged at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// `true` while below the limit: frames that can wait may be taken on.
    pub(crate) fn has_room(&self) -> bool {
        self.in_use() < self.limit
    }

    /// Charges `bytes` if that stays within the limit (or nothing else is charged: one frame
    /// larger than the whole budget must still be able to pass, alone).
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            if current != 0 && current.saturating_add(bytes) > self.limit {
                return false;
            }
            match self.in_use.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.note_peak(current + bytes);
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    /// Charges `bytes` whatever the limit (small frames, frames that cannot wait).
    pub(crate) fn charge(&self, bytes: usize) {
        let now = self.in_use.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.note_peak(now);
    }

    /// Raises the peak to `now` if it is higher; read first, so that the usual case (no new
    /// peak) costs a load, not a locked instruction per frame.
    fn note_peak(&self, now: usize) {
        if now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Gives `bytes` back.
    pub(crate) fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.in_use.fetch_sub(bytes, Ordering::AcqRel);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Waits until `ready()` holds, re-checking it whenever bytes are released.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        let _waiting = Waiting::new(&self.waiters);
        loop {
            let notified = self.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if ready() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_charges_respect_the_limit_and_small_ones_pass() {
        let budget = MemoryBudget::new(100);
        assert!(budget.try_charge(60));
        assert!(!budget.try_charge(60), "over the limit");
        budget.charge(60);
        assert_eq!(budget.in_use(), 120);
        assert!(!budget.has_room());
        budget.release(120);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 120);
        // Alone, a charge larger than the whole budget passes.
        assert!(budget.try_charge(500));
        budget.release(500);
    }

    #[tokio::test]
    async fn a_release_wakes_a_waiter() {
        let budget = MemoryBudget::new(100);
        budget.charge(100);
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move {
                budget.wait_until(|| budget.try_charge(50)).await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        budget.release(100);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
            .await
            .expect("the waiter was woken")
            .unwrap();
        assert_eq!(budget.in_use(), 50);
    }
}
