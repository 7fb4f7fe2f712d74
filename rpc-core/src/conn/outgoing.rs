//! [`PendingTable`]: the calls this side made on a connection that await their answer, by
//! request id (generic over the answer, which the connection's state defines). Registering, completing, cancelling and failing them all at once on close are
//! plain operations on a plain struct (the future that waits is `pending_call`'s).

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::error::CallError;

/// Where the answer (of type `T`) to one call goes.
pub(crate) type ReplySender<T> = oneshot::Sender<Result<T, CallError>>;

/// The calls awaiting an answer of type `T`, and whether the connection has closed.
pub(crate) struct PendingTable<T> {
    pending: HashMap<u64, ReplySender<T>>,
    /// Set once, when the connection closes: nothing registers after that.
    closed: Option<String>,
}

impl<T> Default for PendingTable<T> {
    fn default() -> Self {
        PendingTable {
            pending: HashMap::new(),
            closed: None,
        }
    }
}

impl<T> PendingTable<T> {
    /// Registers call `id`; refused (with the reason) once the connection has closed.
    pub(crate) fn register(&mut self, id: u64, tx: ReplySender<T>) -> Result<(), String> {
        if let Some(reason) = &self.closed {
            return Err(reason.clone());
        }
        self.pending.insert(id, tx);
        Ok(())
    }

    /// The answer to `id` arrived: where to send it (`None` if the caller gave up).
    pub(crate) fn complete(&mut self, id: u64) -> Option<ReplySender<T>> {
        self.pending.remove(&id)
    }

    /// The caller gave up on `id`; `true` if it was still waiting (tell the callee).
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        self.pending.remove(&id).is_some()
    }

    /// The connection closed: every waiting call, to be failed outside the lock.
    pub(crate) fn fail_all(&mut self, reason: &str) -> Vec<ReplySender<T>> {
        self.closed = Some(reason.to_owned());
        self.pending.drain().map(|(_, tx)| tx).collect()
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
        table.register(1, tx1).unwrap();
        table.register(2, tx2).unwrap();
        table.register(3, tx3).unwrap();
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
        assert_eq!(table.register(4, tx4).unwrap_err(), "gone");
        assert_eq!(table.len(), 0);
    }
}
