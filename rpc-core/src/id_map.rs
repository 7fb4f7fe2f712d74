//! [`IdMap`]: a hash map keyed by ids this side hands out (its request ids, its export ids),
//! hashed by one multiplication instead of SipHash.
//!
//! std's default hasher resists a peer that chooses keys so that they collide (HashDoS); that
//! costs about 20 ns per operation, and an outgoing call does three (register, complete, take
//! the answer). The ids here are chosen by this side, counting up from 1, so the peer cannot
//! pick the keys the table holds; it can only look up keys of its own choosing, and a lookup
//! probes no further than the entries this side placed, which a multiplicative hash spreads
//! evenly. Tables keyed by ids the peer chooses (the request ids of its calls, in
//! `admission`) keep std's hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from ids this side hands out (see the module docs).
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes one `u64` by multiplying it with 2^64 / φ (Fibonacci hashing): consecutive ids
/// differ in the low bits that pick a bucket and in the high bits that hashbrown keeps as each
/// entry's tag.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in byte by byte.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn consecutive_ids_spread_over_buckets_and_tags() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (1..=1024u64).map(|id| build.hash_one(id)).collect();
        // The low 10 bits (the bucket in a table of 1,024) are all different...
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        assert_eq!(buckets.len(), 1024);
        // ...and the top 7 bits (hashbrown's tag) take every value.
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 128);
    }

    #[test]
    fn it_is_a_map() {
        let mut map = IdMap::default();
        for id in 0..10_000u64 {
            map.insert(id, id * 2);
        }
        assert!((0..10_000u64).all(|id| map.get(&id) == Some(&(id * 2))));
        assert_eq!(map.get(&u64::MAX), None);
    }
}
