//! [`IdMap`]: a hash map keyed by ids this side hands out (its request ids, its export ids),
//! hashed by one multiplication instead of SipHash.
//!
//! std's default hasher resists a peer that chooses keys so that they collide (HashDoS); that
//! costs about 20 ns per operation, and an outgoing call does three (register, complete, take
//! the answer). The ids here are chosen by this side, counting up from 1. The peer still has a
//! say in which of them stay in a table (it can leave chosen calls unanswered, or keep chosen
//! objects), and it can look up ids of its own choosing; had it a way to make the ids it keeps
//! share buckets, every lookup would probe through them. So the hash is two folded
//! multiplies (as in foldhash and aHash): the 128-bit product of the id and a random odd
//! number drawn for each table, its two halves XORed, and again with a second number, so that
//! every bit of the hash depends on every bit of the id. Without the multiplier, the peer cannot tell which ids share a bucket, whatever
//! their pattern (consecutive, or a power of two apart). Tables keyed by ids the peer chooses itself
//! (the request ids of its calls, in `admission`) keep std's hasher.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// A map from ids this side hands out (see the module docs).
pub(crate) type IdMap<V> = HashMap<u64, V, IdHashing>;

/// Makes the hashers of one [`IdMap`]: all with the table's own random multipliers.
#[derive(Clone, Copy)]
pub(crate) struct IdHashing {
    multipliers: [u64; 2],
}

impl Default for IdHashing {
    fn default() -> Self {
        // Any odd numbers will do; std's randomly keyed hasher draws them, per table.
        let random = RandomState::new();
        IdHashing {
            multipliers: [random.hash_one(1u64) | 1, random.hash_one(2u64) | 1],
        }
    }
}

impl BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: 0,
            multipliers: self.multipliers,
        }
    }
}

/// Hashes one `u64`: a folded multiply by the table's first multiplier, and another by its
/// second when the hash is taken.
pub(crate) struct IdHasher {
    state: u64,
    multipliers: [u64; 2],
}

/// The 128-bit product of `a` and `b`, its halves XORed.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.multipliers[1])
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else is folded in byte by byte.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.state = folded_multiply(self.state ^ id, self.multipliers[0]);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// How many of 1,024 buckets (the hash's low 10 bits) and of the 128 tags hashbrown keeps
    /// (its top 7 bits) the ids `stride` apart fill.
    fn filled(hashing: IdHashing, stride: u64) -> (usize, usize) {
        let hashes: Vec<u64> = (1..=1024u64)
            .map(|i| hashing.hash_one(i * stride))
            .collect();
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        (buckets.len(), tags.len())
    }

    #[test]
    fn ids_spread_over_buckets_whatever_their_pattern() {
        for _ in 0..200 {
            let hashing = IdHashing::default();
            for stride in [1, 2, 1024, 1 << 16, 1 << 32] {
                let (buckets, tags) = filled(hashing, stride);
                // 1,024 keys thrown at random into 1,024 buckets fill about 647 of them, and
                // all 128 tags; a regular pattern and an unlucky pair of multipliers fill
                // fewer now and then (down to about 560 and 110 seen), far from the 1 bucket
                // that ids a power of two apart fill under a plain multiplication.
                assert!(buckets > 450, "stride {stride}: {buckets} of 1024 buckets");
                assert!(tags > 90, "stride {stride}: {tags} of 128 tags");
            }
        }
    }

    #[test]
    fn each_table_has_its_own_multiplier() {
        let multipliers: HashSet<[u64; 2]> =
            (0..10).map(|_| IdHashing::default().multipliers).collect();
        assert_eq!(multipliers.len(), 10);
        assert!(multipliers.iter().flatten().all(|m| m % 2 == 1));
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
