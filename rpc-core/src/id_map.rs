//! [`IdMap`]: a map keyed by request and object ids, which finds the ids it holds without
//! hashing them when they are close to one another, as a connection's ids are.
//!
//! Each side of a connection numbers its calls and its exported objects in sequence, so at
//! any moment the ids a table holds mostly lie in a short window. An `IdMap` keeps each entry
//! in a ring of slots, at `id % ring length`, with its id to check against: finding an entry
//! is an index and a compare. The ring is kept at least twice as long as the entries in it.
//!
//! Ids it cannot place that way go to a `HashMap` with std's keyed hasher (SipHash) beside
//! the ring: when an entry arrives at a slot taken by another id, the one there moves over.
//! An id kept long (a call left unanswered, an object held) therefore ends up in the map
//! while the ring goes on serving the ids around it. The peer chooses some of the ids (those
//! of its calls), and some of those that stay (it can leave our calls unanswered); the worst
//! it can do is send every entry to the map, which is where every entry was before the ring
//! (the ring, like the map, keeps the length the most entries needed, and each table bounds
//! its entries).
//! Nothing about the ids is trusted: any id, in any order, is a correct key.

use std::collections::HashMap;

/// The ring's length when the first entry comes.
const FIRST_RING: usize = 16;

/// A map from `u64` ids to `V` (see the module's documentation).
pub(crate) struct IdMap<V> {
    /// The entry of id `id`, if it is in the ring, is at `id % ring.len()` (a power of two).
    ring: Vec<Option<(u64, V)>>,
    /// Entries in the ring.
    in_ring: usize,
    /// Entries whose slot another id took.
    spilled: HashMap<u64, V>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            ring: Vec::new(),
            in_ring: 0,
            spilled: HashMap::new(),
        }
    }
}

impl<V> IdMap<V> {
    /// The slot of `id` (the ring is not empty).
    fn slot(&self, id: u64) -> usize {
        // Truncation is what is wanted: the ring's length is a power of two below 2^usize::BITS.
        (id as usize) & (self.ring.len() - 1)
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.in_ring + self.spilled.len()
    }

    /// The slot of the ring that holds `id`, if one does.
    fn slot_of(&self, id: u64) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let slot = self.slot(id);
        matches!(&self.ring[slot], Some((held, _)) if *held == id).then_some(slot)
    }

    /// Keeps `value` as `id`'s entry; returns the entry it replaced.
    pub(crate) fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if 2 * (self.in_ring + 1) > self.ring.len() {
            self.grow();
        }
        if let Some((_, old)) = self.slot_of(id).and_then(|slot| self.ring[slot].as_mut()) {
            return Some(std::mem::replace(old, value));
        }
        let replaced = self.remove_spilled(id);
        let slot = self.slot(id);
        match self.ring[slot].replace((id, value)) {
            Some((other, moved)) => {
                self.spilled.insert(other, moved);
            }
            None => self.in_ring += 1,
        }
        replaced
    }

    /// The entry of `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&V> {
        match self.slot_of(id) {
            Some(slot) => self.ring[slot].as_ref().map(|(_, value)| value),
            // Hashes nothing while the map is empty.
            None => self.spilled.get(&id),
        }
    }

    /// The entry of `id`, to change.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        match self.slot_of(id) {
            Some(slot) => self.ring[slot].as_mut().map(|(_, value)| value),
            None => self.spilled.get_mut(&id),
        }
    }

    /// Takes out the entry of `id`.
    pub(crate) fn remove(&mut self, id: u64) -> Option<V> {
        match self.slot_of(id) {
            Some(slot) => {
                self.in_ring -= 1;
                self.ring[slot].take().map(|(_, value)| value)
            }
            None => self.remove_spilled(id),
        }
    }

    /// `HashMap::remove` hashes even when the map is empty, as it mostly is.
    fn remove_spilled(&mut self, id: u64) -> Option<V> {
        if self.spilled.is_empty() {
            return None;
        }
        self.spilled.remove(&id)
    }

    /// Every entry, to change, in no particular order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        let ring = self.ring.iter_mut().flatten().map(|(_, value)| value);
        ring.chain(self.spilled.values_mut())
    }

    /// Takes out every entry, in no particular order.
    pub(crate) fn take_all(&mut self) -> Vec<(u64, V)> {
        self.in_ring = 0;
        let ring = self.ring.iter_mut().filter_map(Option::take);
        ring.chain(self.spilled.drain()).collect()
    }

    /// Doubles the ring, and puts back every entry it held, and spilled entries whose slots in
    /// the longer ring are free, as long as the ring stays at most half full.
    fn grow(&mut self) {
        let length = (2 * self.ring.len()).max(FIRST_RING);
        let old = std::mem::replace(&mut self.ring, (0..length).map(|_| None).collect());
        // Ids in different slots of the shorter ring are in different slots of the longer one
        // (its slot keeps the same low bits): they all find room, and `in_ring` stays.
        for (id, value) in old.into_iter().flatten() {
            let slot = self.slot(id);
            self.ring[slot] = Some((id, value));
        }
        let back: Vec<u64> = (self.spilled.keys())
            .filter(|&&id| self.ring[self.slot(id)].is_none())
            .copied()
            .collect();
        for id in back {
            if 2 * (self.in_ring + 1) > self.ring.len() {
                // The ring stays at least twice as long as its entries.
                break;
            }
            // Two of them may share a free slot: the first takes it.
            let slot = self.slot(id);
            if self.ring[slot].is_none()
                && let Some(value) = self.spilled.remove(&id)
            {
                self.ring[slot] = Some((id, value));
                self.in_ring += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_in_sequence_stay_in_the_ring() {
        let mut map = IdMap::default();
        for id in 1..=64 {
            assert!(map.insert(id, id * 10).is_none());
        }
        // 64 in flight: one answered, one more made, many times over.
        for id in 65..100_000u64 {
            assert_eq!(map.remove(id - 64), Some((id - 64) * 10));
            map.insert(id, id * 10);
        }
        assert_eq!(map.len(), 64);
        assert!(map.spilled.is_empty(), "no id left the ring");
        assert_eq!(map.ring.len(), 128);
    }

    #[test]
    fn an_id_kept_long_moves_aside_and_is_still_found() {
        let mut map = IdMap::default();
        map.insert(1, "held");
        for id in 2..10_000u64 {
            map.insert(id, "brief");
            assert_eq!(map.remove(id), Some("brief"));
        }
        assert_eq!(map.get(1), Some(&"held"));
        assert_eq!(map.len(), 1);
        assert_eq!(map.remove(1), Some("held"));
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn ids_that_share_a_slot_all_stay_findable() {
        let mut map = IdMap::default();
        // Every id in the same slot of any ring up to 2^20 long.
        let ids: Vec<u64> = (0..1_000).map(|i| i << 20).collect();
        for &id in &ids {
            map.insert(id, id);
        }
        assert_eq!(map.len(), ids.len());
        for &id in &ids {
            assert_eq!(map.get(id), Some(&id));
        }
        for &id in &ids {
            assert_eq!(map.remove(id), Some(id));
        }
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn the_ring_stays_at_most_half_full() {
        let mut map = IdMap::default();
        // Ids that share 7 slots of the first ring, and spill, 63 in each slot.
        for slot in 0..7 {
            for round in 0..64 {
                map.insert(slot + 16 * round, ());
            }
        }
        assert_eq!((map.in_ring, map.ring.len()), (7, 16));
        // The ring grows, and the spilled ids find free slots in the longer ring.
        for id in 2_000..2_100 {
            map.insert(id, ());
            let (held, length) = (map.in_ring, map.ring.len());
            assert!(2 * held <= length, "{held} entries in a ring of {length}");
        }
        assert_eq!(map.len(), 548);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        Remove(u64),
        Change(u64),
        Drain,
    }

    /// Ids near one another (as a connection makes them), or anywhere.
    fn any_id() -> impl Strategy<Value = u64> {
        prop_oneof![0..200u64, any::<u64>(), (0..8u64).prop_map(|i| i << 40)]
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => any_id().prop_map(Op::Insert),
            6 => any_id().prop_map(Op::Remove),
            3 => any_id().prop_map(Op::Change),
            1 => Just(Op::Drain),
        ]
    }

    proptest! {
        /// Whatever is done to it, it holds what a `HashMap` holds.
        #[test]
        fn it_behaves_as_a_hash_map(ops in prop::collection::vec(any_op(), 1..400)) {
            let mut map = IdMap::default();
            let mut model = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert(id) => prop_assert_eq!(map.insert(id, n), model.insert(id, n)),
                    Op::Remove(id) => prop_assert_eq!(map.remove(id), model.remove(&id)),
                    Op::Change(id) => {
                        if let Some(v) = map.get_mut(id) {
                            *v += 1_000;
                        }
                        if let Some(v) = model.get_mut(&id) {
                            *v += 1_000;
                        }
                    }
                    Op::Drain => {
                        let mut drained = map.take_all();
                        let mut expected: Vec<_> = model.drain().collect();
                        drained.sort();
                        expected.sort();
                        prop_assert_eq!(drained, expected);
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for (id, value) in &model {
                prop_assert_eq!(map.get(*id), Some(value));
            }
            let mut values: Vec<usize> = map.values_mut().map(|v| *v).collect();
            let mut expected: Vec<usize> = model.values().copied().collect();
            values.sort();
            expected.sort();
            prop_assert_eq!(values, expected);
        }
    }
}
