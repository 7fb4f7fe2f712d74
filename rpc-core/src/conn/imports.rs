//! [`ImportTable`]: the peer's objects this side holds proxies of, with how many times the
//! peer sent each one.
//!
//! Every reference that arrives counts one more *received* and makes one more proxy (a
//! `RemoteObject`, shared by the clones of an `ObjectRef`). When the last proxy of an object
//! is dropped, the entry goes and the peer is sent a decref of everything received, so that
//! the peer's count of references *sent* (see `exports`) reaches zero only when no reference
//! is on its way back. A reference that arrives while the decref is in flight starts a new
//! entry, and the peer's count includes it.

use std::collections::HashMap;

#[derive(Debug)]
struct Import {
    /// References the peer sent since the entry was made.
    received: u64,
    /// Live proxies.
    holders: u64,
}

/// The imported objects of one connection, by the peer's id.
#[derive(Debug, Default)]
pub(crate) struct ImportTable {
    by_id: HashMap<u64, Import>,
}

impl ImportTable {
    /// A reference to the peer's object `id` arrived (and becomes a new proxy).
    pub(crate) fn received(&mut self, id: u64) {
        let import = self.by_id.entry(id).or_insert(Import {
            received: 0,
            holders: 0,
        });
        import.received += 1;
        import.holders += 1;
    }

    /// A proxy of `id` was dropped. When it was the last: how many references to send back
    /// in a decref.
    #[must_use = "the count must be sent to the peer"]
    pub(crate) fn dropped(&mut self, id: u64) -> Option<u64> {
        let import = self.by_id.get_mut(&id)?;
        import.holders = import.holders.saturating_sub(1);
        if import.holders > 0 {
            return None;
        }
        self.by_id.remove(&id).map(|i| i.received)
    }

    /// Objects with live proxies.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_proxy_sends_back_everything_received() {
        let mut table = ImportTable::default();
        table.received(5);
        table.received(5);
        table.received(6);
        assert_eq!(table.len(), 2);
        assert_eq!(table.dropped(5), None);
        assert_eq!(table.dropped(5), Some(2));
        assert_eq!(table.dropped(6), Some(1));
        assert_eq!(table.len(), 0);
        // Arriving again after the decref: a new count.
        table.received(5);
        assert_eq!(table.dropped(5), Some(1));
        assert_eq!(table.dropped(5), None, "an unknown id sends nothing");
    }
}
