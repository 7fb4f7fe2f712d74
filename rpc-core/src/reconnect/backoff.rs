//! [`Backoff`]: how long a [`ReconnectingClient`](super::ReconnectingClient) waits between
//! attempts to connect: capped exponential back-off with jitter.
//!
//! The ceiling of the wait before attempt `n + 1` (after `n` failures, counting from 0) is
//! `min(max, initial × factor^n)`. With full jitter (the default) the wait is drawn uniformly
//! from `[0, ceiling]`, so that many clients cut off at once by the same server restart do not
//! come back in step ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).

use std::hash::BuildHasher;
use std::time::Duration;

/// How the wait between two connection attempts grows: from [`initial`](Backoff::initial),
/// times [`factor`](Backoff::factor) after each failure, never above [`max`](Backoff::max),
/// then [`jitter`](Backoff::jitter) applied.
///
/// The default: 100 ms, doubling, capped at 30 s, full jitter. The waits' ceilings are then
/// 100 ms, 200 ms, 400 ms, ... 25.6 s, then 30 s for every later attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first wait. Default 100 ms.
    pub initial: Duration,
    /// What the ceiling is multiplied by after each failed attempt; below 1 counts as 1.
    /// Default 2.
    pub factor: f64,
    /// The largest wait, whatever the number of failures. Default 30 s.
    pub max: Duration,
    /// How a wait is drawn under its ceiling. Default [`Jitter::Full`].
    pub jitter: Jitter,
}

/// How a wait is drawn under the ceiling the back-off computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniformly between zero and the ceiling: clients cut off together spread out best.
    Full,
    /// Exactly the ceiling: predictable, but clients cut off together retry together.
    None,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max: Duration::from_secs(30),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// A back-off starting at `initial`, multiplied by `factor` after each failure, capped at
    /// `max`, with full jitter.
    pub fn new(initial: Duration, factor: f64, max: Duration) -> Self {
        Backoff {
            initial,
            factor,
            max,
            jitter: Jitter::Full,
        }
    }

    /// The same back-off with `jitter`.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The most the client waits after `failures` failed attempts in a row (0 for the wait
    /// before the first retry): `min(max, initial × factor^failures)`, before jitter.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = self.factor.max(1.0);
        let grown = self.initial.as_secs_f64() * factor.powi(failures.min(i32::MAX as u32) as i32);
        let max = self.max.as_secs_f64();
        // `grown` may be infinite or NaN for huge exponents: the cap wins then.
        if grown.is_finite() && grown < max {
            Duration::from_secs_f64(grown)
        } else {
            self.max
        }
    }

    /// The wait after `failures` failed attempts, given `unit`, a number in `[0, 1)` (random
    /// in use, fixed in tests).
    pub(crate) fn wait(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures);
        match self.jitter {
            Jitter::Full => ceiling.mul_f64(unit.clamp(0.0, 1.0)),
            Jitter::None => ceiling,
        }
    }

    /// The wait after `failures` failed attempts, jitter drawn at random.
    pub(crate) fn random_wait(&self, failures: u32) -> Duration {
        self.wait(failures, random_unit())
    }
}

/// A number in `[0, 1)`, random enough to spread clients apart (not for cryptography): std's
/// `RandomState` is seeded from the operating system once per thread and moved on each use.
fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_default_doubles_from_100_ms_up_to_30_s() {
        let b = Backoff::default();
        let ceilings: Vec<Duration> = (0..12).map(|n| b.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
            .map(MS)
        );
    }

    #[test]
    fn the_cap_holds_for_any_number_of_failures() {
        let b = Backoff::default();
        for failures in [40, 1000, 1 << 20, u32::MAX] {
            assert_eq!(b.ceiling(failures), Duration::from_secs(30));
            assert_eq!(b.wait(failures, 0.999_999), b.max.mul_f64(0.999_999));
        }
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.wait(3, 0.0), Duration::ZERO);
        assert_eq!(b.wait(3, 0.5), MS(400));
        assert_eq!(b.wait(3, 0.25), MS(200));
        // Out-of-range units are clamped, never above the ceiling.
        assert_eq!(b.wait(3, 7.0), MS(800));
        assert_eq!(b.wait(3, -1.0), Duration::ZERO);
        for failures in 0..64 {
            let wait = b.random_wait(failures);
            assert!(wait <= b.ceiling(failures), "{wait:?} after {failures}");
        }
    }

    #[test]
    fn random_waits_differ() {
        let b = Backoff::default();
        let waits: std::collections::BTreeSet<Duration> =
            (0..32).map(|_| b.random_wait(20)).collect();
        assert!(waits.len() > 16, "{waits:?}");
    }

    #[test]
    fn without_jitter_the_wait_is_the_ceiling() {
        let b = Backoff::new(MS(10), 3.0, MS(500)).with_jitter(Jitter::None);
        let waits: Vec<Duration> = (0..6).map(|n| b.wait(n, 0.1)).collect();
        assert_eq!(waits, [10, 30, 90, 270, 500, 500].map(MS));
    }

    #[test]
    fn a_factor_below_one_does_not_shrink_the_wait() {
        let b = Backoff::new(MS(50), 0.5, MS(500)).with_jitter(Jitter::None);
        assert_eq!(b.wait(5, 0.0), MS(50));
    }
}
