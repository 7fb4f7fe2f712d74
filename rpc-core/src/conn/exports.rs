//! [`ExportTable`]: the objects one side of a connection exports to the other, with how many
//! references to each it has sent and not yet had back.
//!
//! An object gets an id the first time it is encoded for the connection; encoding it again
//! reuses the id (identity is the address of its dispatcher). A reference counts in two
//! steps: encoding makes it *pending*, and only once the frame that carries it is about to be
//! queued is it *committed* (sent). An object with no committed reference is not callable: a
//! peer that guesses the next id cannot reach an object whose frame was never queued (a call
//! future dropped before its first poll, an answer that failed to encode), and a failed frame
//! rolls its pending references back. A decref from the peer subtracts what the peer
//! received; the entry goes when nothing is sent or pending, and with it the table's hold on
//! the object. The root object is exported at id [`ROOT_OBJECT`] and is never released, like
//! any other permanent object (a server's lookup of sturdy URLs). See
//! `refctx` for why counting references *sent* makes a re-send during a decref safe.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::Dispatch;
use crate::id_map::IdMap;
use crate::protocol::ROOT_OBJECT;

/// An object this side exports on the connection.
pub(crate) struct Export {
    object: Arc<dyn Dispatch>,
    /// References sent minus references the peer said it dropped.
    sent: u64,
    /// References encoded in frames not yet queued.
    pending: u64,
    /// The root object: never released.
    permanent: bool,
}

/// The export table of one connection.
pub(crate) struct ExportTable {
    /// By the ids this side gave (see `IdMap`).
    by_id: IdMap<Export>,
    /// Object identity (the address of its dispatcher) to id, so that an object sent twice
    /// gets one id.
    by_address: HashMap<usize, u64>,
    next_id: u64,
    limit: usize,
}

fn address(object: &Arc<dyn Dispatch>) -> usize {
    Arc::as_ptr(object) as *const () as usize
}

impl ExportTable {
    /// A table holding the `permanent` objects at their ids (a server's root at
    /// [`ROOT_OBJECT`]), never released, and room for `limit` objects in all.
    pub(crate) fn new(permanent: Vec<(u64, Arc<dyn Dispatch>)>, limit: usize) -> Self {
        let mut table = ExportTable {
            by_id: IdMap::default(),
            by_address: HashMap::new(),
            next_id: ROOT_OBJECT + 1,
            limit,
        };
        for (id, object) in permanent {
            table.by_address.entry(address(&object)).or_insert(id);
            let export = Export {
                object,
                sent: 0,
                pending: 0,
                permanent: true,
            };
            table.by_id.insert(id, export);
        }
        table
    }

    /// How many objects are exported (the root included).
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Exports `object` (again): returns its id and counts one more reference pending (see
    /// [`commit`](ExportTable::commit)). Fails when a new object would exceed the limit.
    pub(crate) fn export(&mut self, object: &Arc<dyn Dispatch>) -> Result<u64, String> {
        if let Some(&id) = self.by_address.get(&address(object)) {
            let export = self
                .by_id
                .get_mut(id)
                .expect("the export tables are out of step");
            if !export.permanent {
                export.pending += 1;
            }
            return Ok(id);
        }
        if self.by_id.len() >= self.limit {
            return Err(format!(
                "this side already exports {} objects on the connection, the limit \
                 (max_exported_objects); let the peer drop references it holds, or raise the \
                 limit",
                self.limit
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_address.insert(address(object), id);
        let export = Export {
            object: Arc::clone(object),
            sent: 0,
            pending: 1,
            permanent: false,
        };
        self.by_id.insert(id, export);
        Ok(id)
    }

    /// The frame carrying one pending reference to `id` is being queued: the reference is
    /// sent, and the object callable.
    pub(crate) fn commit(&mut self, id: u64) {
        if let Some(export) = self.by_id.get_mut(id).filter(|e| !e.permanent) {
            export.pending = export.pending.saturating_sub(1);
            export.sent += 1;
        }
    }

    /// The frame carrying one pending reference to `id` will never be queued. Returns the
    /// object when nothing is left, for the caller to drop outside its lock.
    #[must_use = "the released object must be dropped outside the table's lock"]
    pub(crate) fn roll_back(&mut self, id: u64) -> Option<Arc<dyn Dispatch>> {
        let export = self.by_id.get_mut(id).filter(|e| !e.permanent)?;
        export.pending = export.pending.saturating_sub(1);
        self.remove_if_unused(id)
    }

    /// `count` references to `id` came back (a decref). Returns the object when none are
    /// left, for the caller to drop outside its lock.
    #[must_use = "the released object must be dropped outside the table's lock"]
    pub(crate) fn release(&mut self, id: u64, count: u64) -> Option<Arc<dyn Dispatch>> {
        let export = self.by_id.get_mut(id).filter(|e| !e.permanent)?;
        export.sent = export.sent.saturating_sub(count);
        self.remove_if_unused(id)
    }

    fn remove_if_unused(&mut self, id: u64) -> Option<Arc<dyn Dispatch>> {
        let export = self.by_id.get(id)?;
        if export.sent > 0 || export.pending > 0 {
            return None;
        }
        let export = self.by_id.remove(id)?;
        self.by_address.remove(&address(&export.object));
        Some(export.object)
    }

    /// The object exported as `id`, if the peer may call it (a frame handing it over was
    /// queued).
    pub(crate) fn get(&self, id: u64) -> Option<Arc<dyn Dispatch>> {
        self.by_id
            .get(id)
            .filter(|e| e.permanent || e.sent > 0)
            .map(|e| Arc::clone(&e.object))
    }

    /// Empties the table (the connection closed); returns the objects for the caller to drop
    /// outside its lock.
    #[must_use = "the released objects must be dropped outside the table's lock"]
    pub(crate) fn clear(&mut self) -> Vec<Arc<dyn Dispatch>> {
        self.by_address.clear();
        (self.by_id.take_all().into_iter())
            .map(|(_, e)| e.object)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::{Args, HandlerFuture, no_such_method};
    use crate::error::RemoteError;

    struct Nothing;

    impl Dispatch for Nothing {
        fn interface(&self) -> &'static str {
            "Nothing"
        }

        fn dispatch(&self, method: &str, _: Args<'_>) -> Result<HandlerFuture, RemoteError> {
            Err(no_such_method("Nothing", method))
        }
    }

    fn object() -> Arc<dyn Dispatch> {
        Arc::new(Nothing)
    }

    #[test]
    fn an_object_sent_twice_has_one_id_and_needs_both_references_back() {
        let mut table = ExportTable::new(Vec::new(), 10);
        let a = object();
        let id = table.export(&a).unwrap();
        assert_eq!(table.export(&a).unwrap(), id);
        table.commit(id);
        table.commit(id);
        assert!(table.release(id, 1).is_none());
        assert!(table.get(id).is_some());
        assert!(table.release(id, 1).is_some());
        assert!(table.get(id).is_none());
        // Sent again after release: a new id.
        assert_ne!(table.export(&a).unwrap(), id);
    }

    #[test]
    fn a_resend_during_a_decref_keeps_the_object() {
        let mut table = ExportTable::new(Vec::new(), 10);
        let a = object();
        let id = table.export(&a).unwrap();
        table.commit(id);
        // The peer drops its copy (decref of 1 in flight) while this side sends it again.
        table.export(&a).unwrap();
        table.commit(id);
        assert!(table.release(id, 1).is_none(), "released early");
        assert!(table.get(id).is_some());
    }

    #[test]
    fn the_root_is_never_released_and_counts_against_the_limit() {
        let root = object();
        let mut table = ExportTable::new(vec![(ROOT_OBJECT, Arc::clone(&root))], 2);
        assert_eq!(table.export(&root).unwrap(), ROOT_OBJECT);
        assert!(table.release(ROOT_OBJECT, u64::MAX).is_none());
        assert!(table.get(ROOT_OBJECT).is_some());
        let a = object();
        table.export(&a).unwrap();
        let refused = table.export(&object()).unwrap_err();
        assert!(refused.contains("max_exported_objects"), "{refused}");
        assert_eq!(table.len(), 2);
        assert_eq!(table.clear().len(), 2);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn unknown_ids_and_excess_counts_are_harmless() {
        let mut table = ExportTable::new(Vec::new(), 10);
        assert!(table.release(42, 1).is_none());
        let a = object();
        let id = table.export(&a).unwrap();
        table.commit(id);
        assert!(table.release(id, 1000).is_some());
        assert!(table.release(id, 1).is_none());
    }

    #[test]
    fn an_object_is_callable_only_once_a_frame_handing_it_over_is_queued() {
        let mut table = ExportTable::new(Vec::new(), 10);
        let a = object();
        let id = table.export(&a).unwrap();
        assert!(
            table.get(id).is_none(),
            "callable before its frame was queued"
        );
        // The frame failed: the object is gone, and its id is never callable.
        assert!(table.roll_back(id).is_some());
        assert!(table.get(id).is_none());
        assert_eq!(table.len(), 0);
        // Sent once, and once more in a frame that then failed: still callable.
        let id = table.export(&a).unwrap();
        table.commit(id);
        table.export(&a).unwrap();
        assert!(table.roll_back(id).is_none());
        assert!(table.get(id).is_some());
        // A decref while another frame with it is pending keeps the entry (not callable).
        table.export(&a).unwrap();
        assert!(table.release(id, 1).is_none());
        assert!(table.get(id).is_none());
        table.commit(id);
        assert!(table.get(id).is_some());
    }
}
