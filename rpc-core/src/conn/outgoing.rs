//! [`PendingTable`]: the calls this side made on a connection that await their answer, by
//! request id (generic over the answer, which the connection's state defines), with their
//! deadlines. Registering, completing, cancelling, expiring and failing them all at once on
//! close are plain operations on a plain struct (the future that waits is `pending_call`'s,
//! the one timer that expires them is `deadlines`').

use std::collections::HashMap;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::CallError;

/// Where the answer (of type `T`) to one call goes.
pub(crate) type ReplySender<T> = oneshot::Sender<Result<T, CallError>>;

/// The calls awaiting an answer of type `T`, and whether the connection has closed.
pub(crate) struct PendingTable<T> {
    pending: HashMap<u64, Waiting<T>>,
    /// No deadline of a waiting call is earlier than this (it may be earlier than all of
    /// them: calls answered leave it where it was until the next [`expire`](Self::expire)).
    earliest: Option<Instant>,
    /// Set once, when the connection closes: nothing registers after that.
    closed: Option<String>,
}

/// One call awaiting its answer.
struct Waiting<T> {
    tx: ReplySender<T>,
    deadline: Option<Instant>,
}

impl<T> Default for PendingTable<T> {
    fn default() -> Self {
        PendingTable {
            pending: HashMap::new(),
            earliest: None,
            closed: None,
        }
    }
}

impl<T> PendingTable<T> {
    /// Registers call `id`, to fail at `deadline` if it is not answered by then; refused (with
    /// the reason) once the connection has closed. `Ok(true)`: its deadline is now the
    /// earliest, so the timer must be told.
    pub(crate) fn register(
        &mut self,
        id: u64,
        tx: ReplySender<T>,
        deadline: Option<Instant>,
    ) -> Result<bool, String> {
        if let Some(reason) = &self.closed {
            return Err(reason.clone());
        }
        self.pending.insert(id, Waiting { tx, deadline });
        let earlier = match (deadline, self.earliest) {
            (Some(deadline), Some(earliest)) => deadline < earliest,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.earliest = deadline;
        }
        Ok(earlier)
    }

    /// The answer to `id` arrived: where to send it (`None` if the caller gave up).
    pub(crate) fn complete(&mut self, id: u64) -> Option<ReplySender<T>> {
        self.pending.remove(&id).map(|waiting| waiting.tx)
    }

    /// The caller gave up on `id`; `true` if it was still waiting (tell the callee).
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// When the timer should next look: no waiting call's deadline is earlier.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.earliest
    }

    /// Takes out every call whose deadline is `now` or before, to be failed (and cancelled at
    /// the callee) outside the lock; the earliest deadline left is found again.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<(u64, ReplySender<T>)> {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, waiting)| waiting.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        let expired = expired
            .into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|waiting| (id, waiting.tx)))
            .collect();
        self.earliest = self.pending.values().filter_map(|w| w.deadline).min();
        expired
    }

    /// The connection closed: every waiting call, to be failed outside the lock.
    pub(crate) fn fail_all(&mut self, reason: &str) -> Vec<ReplySender<T>> {
        self.closed = Some(reason.to_owned());
        self.earliest = None;
        self.pending
            .drain()
            .map(|(_, waiting)| waiting.tx)
            .collect()
    }

    /// Calls awaiting an answer.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_complete_cancel_and_close() {
        let mut table = PendingTable::<u8>::default();
        let (tx1, _rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        table.register(1, tx1, None).unwrap();
        table.register(2, tx2, None).unwrap();
        table.register(3, tx3, None).unwrap();
        assert!(table.complete(1).is_some());
        assert!(table.complete(1).is_none(), "answered twice");
        assert!(table.cancel(2));
        assert!(!table.cancel(2));
        let failed = table.fail_all("gone");
        assert_eq!(failed.len(), 1);
        for tx in failed {
            let _ = tx.send(Err(CallError::disconnected("gone")));
        }
        assert!(rx3.try_recv().unwrap().is_err());
        let (tx4, _rx4) = oneshot::channel();
        assert_eq!(table.register(4, tx4, None).unwrap_err(), "gone");
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn deadlines_expire_and_the_earliest_is_tracked() {
        let mut table = PendingTable::<u8>::default();
        let t0 = Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, _rx2) = oneshot::channel();
        let (tx3, _rx3) = oneshot::channel();
        let (tx4, _rx4) = oneshot::channel();
        assert_eq!(
            table.register(1, tx1, Some(at(100))),
            Ok(true),
            "the first deadline"
        );
        assert_eq!(
            table.register(2, tx2, Some(at(300))),
            Ok(false),
            "a later one"
        );
        assert_eq!(table.register(3, tx3, None), Ok(false), "none");
        assert_eq!(
            table.register(4, tx4, Some(at(50))),
            Ok(true),
            "an earlier one"
        );
        assert_eq!(table.earliest(), Some(at(50)));
        // Call 4 is answered: the earliest stays until the next look.
        assert!(table.complete(4).is_some());
        assert!(table.expire(at(99)).is_empty());
        assert_eq!(table.earliest(), Some(at(100)));
        let expired = table.expire(at(100));
        assert_eq!(expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1]);
        for (_, tx) in expired {
            let _ = tx.send(Err(CallError::disconnected("late")));
        }
        assert!(rx1.try_recv().unwrap().is_err());
        assert_eq!(table.earliest(), Some(at(300)));
        assert_eq!(table.len(), 2);
        assert_eq!(table.expire(at(1000)).len(), 1, "call 3 has no deadline");
        assert_eq!(table.earliest(), None);
    }
}
