//! The [`Calculator`] remote trait — what a worker exports — and the prime counting it does.
//!
//! The seed calculator only added two numbers; that is far too little work to be worth
//! sending over a network. The demo's real job is [`count_primes`]: how many primes lie in a
//! range `[start, end)`. It is deterministic, needs nothing but the two bounds (so a chunk of
//! work is 16 bytes on the wire), its answer is one number, and it keeps a core busy for as
//! long as you like: the perfect thing to spread over machines.
//!
//! # Where the work runs
//!
//! A handler that computes for a second must not run on tokio's I/O threads: it would stall
//! every other call — and the keepalive pings — of every connection scheduled on that thread.
//! The worker runs each chunk on tokio's blocking pool with [`tokio::task::spawn_blocking`],
//! like Twisted PB's `deferToThread`, and awaits the result; the I/O threads stay free (see
//! the `worker` module). If the caller gives up on a call (drops its future, or its deadline
//! passes), rpc-core drops the handler, and the computation notices a stop flag every 256
//! numbers and frees its thread.
//!
//! # The algorithm
//!
//! Trial division by odd numbers up to `√n`: simple, obviously right, and honest CPU work
//! whose cost grows with the size of the numbers (a chunk near 20 million costs about twice
//! as much as one near 5 million, which is why the front end hands chunks out one at a time
//! instead of splitting the range evenly up front). Numbers below 2³² are divided in 32-bit
//! arithmetic, which is several times faster on x86-64.

use std::sync::atomic::{AtomicBool, Ordering};

use rpc_core::remote;
use serde::{Deserialize, Serialize};

/// A calculator worker: the root object a `calc-worker` serves (PB's `Calculator(pb.Root)`).
///
/// Every answer carries the id of the worker that computed it, so the front end can tell
/// who did what.
#[remote]
pub trait Calculator {
    /// Adds `a` and `b` (wrapping on overflow); returns the sum and the worker's id.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);

    /// Counts the primes `p` with `start <= p < end` (0 when `start >= end`); returns the
    /// count and the worker's id. CPU-bound: runs on the worker's blocking pool, at most
    /// `capacity` at once, so it never delays the worker's other calls.
    async fn remote_count_primes(&self, start: u64, end: u64) -> (u64, u32);

    /// The worker's id, capacity and current load, for a front end that talks to workers
    /// directly (without a broker) and wants to know how much work each can take.
    async fn remote_info(&self) -> WorkerInfo;
}

/// What [`CalculatorRef::info`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: u32,
    /// How many chunks it computes at once.
    pub capacity: u32,
    /// How many chunks it has now (running or waiting for a free slot).
    pub load: u32,
}

/// Whether `n` is prime, by trial division by 2 and the odd numbers up to `√n`.
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let root = n.isqrt();
    if let Ok(n) = u32::try_from(n) {
        // 32-bit division is much cheaper than 64-bit, and every n below 2^32 fits.
        let root = root as u32;
        let mut d = 3u32;
        while d <= root {
            if n % d == 0 {
                return false;
            }
            d += 2;
        }
    } else {
        let mut d = 3u64;
        while d <= root {
            if n.is_multiple_of(d) {
                return false;
            }
            d += 2;
        }
    }
    true
}

/// The number of primes `p` with `start <= p < end`; 0 when `start >= end`.
///
/// ```
/// assert_eq!(calc_client::count_primes(0, 100), 25);
/// assert_eq!(calc_client::count_primes(10, 20), 4); // 11, 13, 17, 19
/// ```
pub fn count_primes(start: u64, end: u64) -> u64 {
    count_primes_until(start, end, &AtomicBool::new(false))
        .expect("nothing else can set a stop flag it alone holds")
}

/// [`count_primes`], giving up (with `None`) soon after `stop` becomes true.
pub(crate) fn count_primes_until(start: u64, end: u64, stop: &AtomicBool) -> Option<u64> {
    /// How many numbers to test between two looks at the stop flag.
    const BATCH: u64 = 256;
    let mut count = 0;
    let mut from = start;
    while from < end {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let to = from.saturating_add(BATCH).min(end);
        count += (from..to).filter(|&n| is_prime(n)).count() as u64;
        from = to;
    }
    Some(count)
}

/// π(limit), the number of primes below `limit`, for the limits the demo and its tests use;
/// `None` for any other limit. The front end checks a job's total against it when it can.
pub fn known_prime_count(limit: u64) -> Option<u64> {
    Some(match limit {
        10 => 4,
        100 => 25,
        1_000 => 168,
        10_000 => 1_229,
        100_000 => 9_592,
        1_000_000 => 78_498,
        2_000_000 => 148_933,
        3_000_000 => 216_816,
        5_000_000 => 348_513,
        10_000_000 => 664_579,
        20_000_000 => 1_270_607,
        50_000_000 => 3_001_134,
        100_000_000 => 5_761_455,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers() {
        let primes: Vec<u64> = (0..50).filter(|&n| is_prime(n)).collect();
        assert_eq!(
            primes,
            [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]
        );
    }

    #[test]
    fn numbers_beyond_32_bits() {
        // 2^32 + 15 is the first prime above 2^32; 2^32 + 1 = 641 * 6700417.
        assert!(is_prime((1 << 32) + 15));
        assert!(!is_prime((1 << 32) + 1));
        assert!(is_prime(4_294_967_291)); // the largest prime below 2^32
        assert!(!is_prime(4_294_967_295));
        assert_eq!(count_primes((1 << 32) - 5, (1 << 32) + 16), 2);
    }

    #[test]
    fn counts_match_known_values() {
        for limit in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
            assert_eq!(
                Some(count_primes(0, limit)),
                known_prime_count(limit),
                "π({limit})"
            );
        }
    }

    #[test]
    fn counts_over_split_ranges_add_up() {
        let whole = count_primes(0, 200_000);
        let split: u64 = (0..200_000u64)
            .step_by(7_919)
            .map(|s| count_primes(s, (s + 7_919).min(200_000)))
            .sum();
        assert_eq!(whole, split);
        assert_eq!(whole, 17_984);
    }

    #[test]
    fn empty_and_reversed_ranges_count_nothing() {
        assert_eq!(count_primes(100, 100), 0);
        assert_eq!(count_primes(100, 10), 0);
        assert_eq!(count_primes(u64::MAX - 1, u64::MAX), 0);
    }

    #[test]
    fn a_set_stop_flag_stops_the_count() {
        assert_eq!(count_primes_until(0, 1 << 40, &AtomicBool::new(true)), None);
    }
}
