//! A job — count the primes below `limit` — cut into chunks, and the report of a finished job.
//!
//! A chunk is a range `[start, end)` of numbers; the chunks of a job cover `[0, limit)`
//! exactly, in order, each `chunk` numbers long except possibly the last. Many small chunks
//! balance better than one big piece per worker (a chunk of large numbers costs more than
//! one of small numbers, and workers differ) and lose less work when a worker dies; too small
//! and the network round trips dominate. A few hundred chunks is a good middle.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// Count the primes in `[0, limit)`, in chunks of `chunk` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The end of the range (exclusive).
    pub limit: u64,
    /// Numbers per chunk (at least 1).
    pub chunk: u64,
}

impl Job {
    /// The default job of `calc-client`: the primes below 20 million (1,270,607 of them),
    /// a few seconds of work on two cores.
    pub const DEFAULT_LIMIT: u64 = 20_000_000;

    /// A job over `[0, limit)` with [`Job::default_chunk`] numbers per chunk.
    pub fn new(limit: u64) -> Job {
        Job {
            limit,
            chunk: Job::default_chunk(limit),
        }
    }

    /// About 200 chunks per job, at least 1,000 numbers each (and at least 1).
    pub fn default_chunk(limit: u64) -> u64 {
        (limit / 200).max(1_000).min(limit.max(1))
    }

    /// Sets [`chunk`](Job::chunk) (at least 1).
    pub fn with_chunk(mut self, chunk: u64) -> Job {
        self.chunk = chunk.max(1);
        self
    }

    /// The job's chunks, in order.
    pub fn chunks(&self) -> Vec<Range<u64>> {
        chunks(self.limit, self.chunk)
    }
}

/// `[0, limit)` cut into consecutive ranges of `size` numbers (the last may be shorter);
/// no range when `limit` is 0. A `size` of 0 counts as 1.
///
/// ```
/// assert_eq!(calc_client::job::chunks(10, 4), [0..4, 4..8, 8..10]);
/// ```
pub fn chunks(limit: u64, size: u64) -> Vec<Range<u64>> {
    let size = size.max(1);
    (0..limit.div_ceil(size))
        .map(|i| {
            let start = i * size;
            start..start.saturating_add(size).min(limit)
        })
        .collect()
}

/// What one worker did for a job, as the front end saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's id, as it answered (or as the broker named it, before any answer).
    pub id: Option<String>,
    /// Its address.
    pub addr: String,
    /// Chunks it computed.
    pub chunks: usize,
    /// Time during which it had at least one chunk of this job in flight (sent, not yet
    /// answered), from the front end's point of view.
    pub busy: Duration,
    /// Why the front end stopped using it, if it did.
    pub lost: Option<String>,
}

/// One chunk recomputed locally to check a worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The chunk.
    pub range: Range<u64>,
    /// The count, locally and (since the check passed) remotely.
    pub count: u64,
    /// The address of the worker that computed it.
    pub worker: String,
}

/// The outcome of a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The job.
    pub job: Job,
    /// The number of primes below `job.limit`.
    pub total: u64,
    /// How many chunks the job had.
    pub chunks: usize,
    /// Chunks sent again because a worker failed them.
    pub retried: usize,
    /// Every worker the front end used or tried, in the order it first met them.
    pub workers: Vec<WorkerStats>,
    /// The chunks recomputed locally, all of which matched.
    pub checks: Vec<Check>,
    /// Whether the total was also checked against a known value of π.
    pub known_total: bool,
    /// From the first chunk sent to the last answer.
    pub elapsed: Duration,
}

impl fmt::Display for JobReport {
    /// The per-worker table, a summary line, and `total: <n>` on the last line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr_width = self
            .workers
            .iter()
            .map(|w| w.addr.len())
            .chain([7])
            .max()
            .unwrap_or(7);
        writeln!(
            f,
            "{:<8} {:<addr_width$} {:>7} {:>9}",
            "worker", "address", "chunks", "busy"
        )?;
        for w in &self.workers {
            write!(
                f,
                "{:<8} {:<addr_width$} {:>7} {:>8.2}s",
                w.id.as_deref().unwrap_or("?"),
                w.addr,
                w.chunks,
                w.busy.as_secs_f64()
            )?;
            match &w.lost {
                Some(why) => writeln!(f, "  lost: {why}")?,
                None => writeln!(f)?,
            }
        }
        writeln!(
            f,
            "{} chunks ({} retried) in {:.2}s; {} chunk(s) checked locally{}",
            self.chunks,
            self.retried,
            self.elapsed.as_secs_f64(),
            self.checks.len(),
            if self.known_total {
                ", total matches the known value of π"
            } else {
                ""
            }
        )?;
        write!(f, "total: {}", self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks are in order, contiguous, start at 0, end at `limit`, and none is empty
    /// or longer than `size`.
    fn assert_cover(limit: u64, size: u64) {
        let chunks = chunks(limit, size);
        let mut next = 0;
        for c in &chunks {
            assert_eq!(c.start, next, "limit {limit} size {size}: gap or overlap");
            assert!(c.end > c.start && c.end - c.start <= size.max(1));
            next = c.end;
        }
        assert_eq!(
            next, limit,
            "limit {limit} size {size}: does not end at the limit"
        );
        assert_eq!(chunks.len() as u64, limit.div_ceil(size.max(1)));
    }

    #[test]
    fn chunks_cover_the_range_exactly() {
        for limit in [0, 1, 2, 9, 10, 11, 999, 1_000, 1_001, 20_000_000] {
            for size in [0, 1, 3, 10, 1_000, 100_000, 20_000_000, 50_000_000] {
                if limit / size.max(1) <= 100_000 {
                    assert_cover(limit, size);
                }
            }
        }
        assert_cover(u64::MAX, u64::MAX / 3);
    }

    #[test]
    fn default_chunks() {
        assert_eq!(Job::new(20_000_000).chunks().len(), 200);
        assert_eq!(Job::new(10_000).chunk, 1_000);
        assert_eq!(Job::new(10).chunks(), vec![Range { start: 0, end: 10 }]);
        assert!(Job::new(0).chunks().is_empty());
    }

    #[test]
    fn counting_chunk_by_chunk_gives_pi() {
        let job = Job::new(1_000_000).with_chunk(30_011);
        let total: u64 = job
            .chunks()
            .into_iter()
            .map(|c| crate::count_primes(c.start, c.end))
            .sum();
        assert_eq!(Some(total), crate::known_prime_count(1_000_000));
    }

    #[test]
    fn the_report_ends_with_the_total() {
        let report = JobReport {
            job: Job::new(100),
            total: 25,
            chunks: 1,
            retried: 0,
            workers: vec![WorkerStats {
                id: Some("7".into()),
                addr: "127.0.0.1:9".into(),
                chunks: 1,
                busy: Duration::from_millis(1500),
                lost: None,
            }],
            checks: vec![],
            known_total: true,
            elapsed: Duration::from_secs(2),
        };
        let text = report.to_string();
        assert_eq!(text.lines().last(), Some("total: 25"));
        assert!(
            text.contains("7        127.0.0.1:9       1     1.50s"),
            "{text}"
        );
    }
}
