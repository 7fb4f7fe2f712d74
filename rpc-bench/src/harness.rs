//! The harness: one way to measure every subject, and the table it prints.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};

use crate::counting::{WriteCounters, allocations};

/// What every call sends and gets back: the harness is `ping(u64) -> u64`. Every bit
/// is used, so that bincode's variable-length integer takes its most bytes (9).
pub(crate) const PAYLOAD: u64 = 0x0123_4567_89ab_cdef;
/// Calls kept in flight in the concurrent patterns.
pub(crate) const IN_FLIGHT: usize = 64;

/// The runtime every measurement runs on: a current_thread one, or a `multi_thread` one with
/// 2 workers.
pub(crate) fn runtime(multi_thread: bool) -> Runtime {
    let (mut builder, kind) = if multi_thread {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(2);
        (builder, "multi_thread")
    } else {
        (Builder::new_current_thread(), "current_thread")
    };
    let built = builder.enable_all().build();
    built.unwrap_or_else(|e| panic!("could not start the {kind} runtime: {e}"))
}

/// How much to measure: every pattern is measured in `chunks` chunks on each subject, after a
/// warm-up in that pattern.
pub(crate) struct Plan {
    /// Sequential calls before measuring.
    pub(crate) seq_warmup: usize,
    /// Calls of a concurrent pattern before measuring it.
    pub(crate) inflight_warmup: usize,
    /// Sequential calls timed one by one, per chunk.
    pub(crate) seq_calls: usize,
    /// Calls per chunk of a concurrent pattern.
    pub(crate) inflight_calls: usize,
    /// Chunks per pattern and subject.
    pub(crate) chunks: usize,
}

/// One system under test, seen from its client.
pub(crate) trait Subject {
    /// Whether the subject has a client that tasks can share, for [`Subject::tasks`].
    const SHARED_CLIENT: bool = true;

    /// One call, awaited.
    async fn round_trip(&mut self);

    /// `total` calls, 64 in flight, the way users write it:
    /// `stream::iter(0..total).map(|_| client.ping(PAYLOAD)).buffer_unordered(64)`.
    async fn buffered(&mut self, total: usize);

    /// `total` calls made by 64 spawned tasks, each calling in a loop on its clone of the
    /// client. Only called when [`Subject::SHARED_CLIENT`].
    async fn tasks(&mut self, total: usize);

    /// The subject's socket write counters, if it has them.
    fn writes(&self) -> Option<&WriteCounters>;
}

/// The patterns every subject is measured in, in the order they are measured.
#[derive(Clone, Copy)]
pub(crate) enum Pattern {
    /// One call at a time: the median round trip.
    Sequential,
    /// 64 in flight through `buffer_unordered` (the raw echo: its pipelined loop).
    Buffered,
    /// 64 tasks sharing one client.
    Tasks,
}

impl Pattern {
    /// Every pattern, in the order they are measured.
    pub(crate) const ALL: [Pattern; 3] = [Pattern::Sequential, Pattern::Buffered, Pattern::Tasks];
}

/// What one chunk of one pattern measured on one subject.
#[derive(Clone, Copy)]
struct Chunk {
    /// The median round trip in µs (sequential) or the calls per second (concurrent).
    value: f64,
    /// Calls made.
    calls: u64,
    /// Write syscalls by the client's and the server's socket, when counted.
    writes: Option<(u64, u64)>,
    /// Heap allocations, client and server together.
    allocs: u64,
}

/// Runs `work` (`calls` calls), and returns what `value` makes of its result along with the
/// writes and allocations it cost.
async fn costed<T>(
    calls: usize,
    writes: Option<&WriteCounters>,
    work: impl Future<Output = T>,
    value: impl FnOnce(T) -> f64,
) -> Chunk {
    let before = (writes.map(WriteCounters::get), allocations());
    let result = work.await;
    let after = (writes.map(WriteCounters::get), allocations());
    let writes = match (before.0, after.0) {
        (Some((c0, s0)), Some((c1, s1))) => Some((c1 - c0, s1 - s0)),
        _ => None,
    };
    Chunk {
        value: value(result),
        calls: calls as u64,
        writes,
        allocs: after.1 - before.1,
    }
}

/// Makes `calls` calls of `pattern` on `subject` (on a subject without a shareable client, 64
/// tasks are not run: see [`measured`]).
async fn run<S: Subject>(subject: &mut S, pattern: Pattern, calls: usize) {
    match pattern {
        Pattern::Sequential => {
            for _ in 0..calls {
                subject.round_trip().await;
            }
        }
        Pattern::Buffered => subject.buffered(calls).await,
        Pattern::Tasks => subject.tasks(calls).await,
    }
}

/// Whether `pattern` is measured on subjects like `S`: 64 tasks only where tasks can share a
/// client.
fn measured<S: Subject>(pattern: Pattern) -> bool {
    !matches!(pattern, Pattern::Tasks) || S::SHARED_CLIENT
}

/// Makes `subject` ready to be measured in `pattern`: `plan.seq_warmup` sequential calls, or
/// `plan.inflight_warmup` calls of a concurrent pattern.
pub(crate) async fn warm_up<S: Subject>(subject: &mut S, plan: &Plan, pattern: Pattern) {
    if measured::<S>(pattern) {
        let calls = match pattern {
            Pattern::Sequential => plan.seq_warmup,
            Pattern::Buffered | Pattern::Tasks => plan.inflight_warmup,
        };
        run(subject, pattern, calls).await;
    }
}

/// Measures one chunk of `pattern` on `subject`: `None` for 64 tasks on a subject without a
/// shareable client.
async fn chunk<S: Subject>(subject: &mut S, plan: &Plan, pattern: Pattern) -> Option<Chunk> {
    if !measured::<S>(pattern) {
        return None;
    }
    let writes = subject.writes().cloned();
    let writes = writes.as_ref();
    let chunk = match pattern {
        Pattern::Sequential => {
            let samples = plan.seq_calls;
            // Made before counting: the harness's allocation is no subject's.
            let mut rtts = Vec::with_capacity(samples);
            let timed = async {
                for _ in 0..samples {
                    let start = Instant::now();
                    subject.round_trip().await;
                    rtts.push(start.elapsed());
                }
                rtts
            };
            let median_us = |mut rtts: Vec<Duration>| {
                rtts.sort();
                rtts[rtts.len() / 2].as_secs_f64() * 1e6
            };
            costed(samples, writes, timed, median_us).await
        }
        Pattern::Buffered | Pattern::Tasks => {
            let calls = plan.inflight_calls;
            let timed = async {
                let start = Instant::now();
                run(subject, pattern, calls).await;
                start
            };
            let rate = |start: Instant| calls as f64 / start.elapsed().as_secs_f64();
            costed(calls, writes, timed, rate).await
        }
    };
    Some(chunk)
}

/// One pattern's figures: its speed, and its costs per call.
#[derive(Clone, Copy, Default)]
pub(crate) struct Sample {
    /// Median round trip in µs (sequential) or calls per second (concurrent patterns).
    pub(crate) value: f64,
    /// Write syscalls per call by the client's socket, when counted.
    pub(crate) client_writes: Option<f64>,
    /// Write syscalls per call by the server's socket, when counted.
    pub(crate) server_writes: Option<f64>,
    /// Heap allocations per call, client and server together.
    pub(crate) allocs: f64,
}

/// A subject's figures for every pattern.
#[derive(Clone, Copy, Default)]
pub(crate) struct Figures {
    /// One call at a time.
    pub(crate) seq: Sample,
    /// 64 in flight through `buffer_unordered` (raw echo: its pipelined loop).
    pub(crate) buffered: Sample,
    /// 64 tasks sharing one client, if the subject has a shareable client.
    pub(crate) tasks: Option<Sample>,
}

/// Everything measured on one subject: each pattern's chunks, in the order they ran.
#[derive(Default)]
pub(crate) struct Measurements {
    chunks: [Vec<Chunk>; 3],
}

impl Measurements {
    /// Measures `subject` alone: in each pattern, after warming it up, in `plan.chunks` chunks.
    pub(crate) async fn alone<S: Subject>(subject: &mut S, plan: &Plan) -> Measurements {
        let mut measured = Measurements::default();
        for pattern in Pattern::ALL {
            warm_up(subject, plan, pattern).await;
            for _ in 0..plan.chunks {
                measured.measure(subject, plan, pattern).await;
            }
        }
        measured
    }

    /// Measures one more chunk of `pattern` on `subject`.
    pub(crate) async fn measure<S: Subject>(
        &mut self,
        subject: &mut S,
        plan: &Plan,
        pattern: Pattern,
    ) {
        if let Some(chunk) = chunk(subject, plan, pattern).await {
            self.chunks[pattern as usize].push(chunk);
        }
    }

    /// Each chunk's value in `pattern`, in the order they ran.
    fn values(&self, pattern: Pattern) -> impl Iterator<Item = f64> + '_ {
        self.chunks[pattern as usize].iter().map(|c| c.value)
    }

    /// The figures of `pattern`: the median of its chunks' values, and its costs per call over
    /// all of them (`None` if it was not measured).
    fn sample(&self, pattern: Pattern) -> Option<Sample> {
        let chunks = &self.chunks[pattern as usize];
        let calls: u64 = chunks.iter().map(|c| c.calls).sum();
        let per_call = |n: u64| n as f64 / calls as f64;
        let writes: Option<Vec<(u64, u64)>> = chunks.iter().map(|c| c.writes).collect();
        let writes = writes.map(|w| w.iter().fold((0, 0), |(c, s), (dc, ds)| (c + dc, s + ds)));
        Some(Sample {
            value: median(self.values(pattern).collect())?,
            client_writes: writes.map(|(c, _)| per_call(c)),
            server_writes: writes.map(|(_, s)| per_call(s)),
            allocs: per_call(chunks.iter().map(|c| c.allocs).sum()),
        })
    }

    /// The figures of every pattern.
    pub(crate) fn figures(&self) -> Figures {
        Figures {
            seq: self.sample(Pattern::Sequential).unwrap_or_default(),
            buffered: self.sample(Pattern::Buffered).unwrap_or_default(),
            tasks: self.sample(Pattern::Tasks),
        }
    }
}

/// The median of `values`, the mean of the two middle ones if they are an even number
/// (`None` if there are none).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let half = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[half]),
        _ => Some((values[half - 1] + values[half]) / 2.0),
    }
}

/// How many times `numerator`'s value in `pattern` is `denominator`'s, in each pair of chunks
/// that ran back to back, sorted. A change in the machine's speed (on a VM it comes in spells
/// of milliseconds to seconds) moves both sides of a pair alike, and so leaves their ratio be,
/// where it moves each side's own median.
fn paired_ratios(
    numerator: &Measurements,
    denominator: &Measurements,
    pattern: Pattern,
) -> Vec<f64> {
    debug_assert_eq!(
        numerator.values(pattern).count(),
        denominator.values(pattern).count(),
        "every chunk of one subject is paired with one of the other"
    );
    let pairs = numerator.values(pattern).zip(denominator.values(pattern));
    let mut ratios: Vec<f64> = pairs.map(|(n, d)| n / d).collect();
    ratios.sort_by(f64::total_cmp);
    ratios
}

/// The median of the [paired ratios](paired_ratios) of `numerator` to `denominator` in
/// `pattern`.
pub(crate) fn paired_ratio(
    numerator: &Measurements,
    denominator: &Measurements,
    pattern: Pattern,
) -> f64 {
    median(paired_ratios(numerator, denominator, pattern)).unwrap_or(f64::NAN)
}

/// The first quartile, the median and the third quartile of the [paired
/// ratios](paired_ratios), to three decimals, as `q1/median/q3`.
pub(crate) fn paired_quartiles(
    numerator: &Measurements,
    denominator: &Measurements,
    pattern: Pattern,
) -> String {
    let ratios = paired_ratios(numerator, denominator, pattern);
    // As far from either end: the (n/4)th from the bottom and from the top.
    let quartile = |at: usize| ratios.get(at).copied();
    let median = median(ratios.clone());
    let q3 = ratios.len().checked_sub(1 + ratios.len() / 4);
    match (quartile(ratios.len() / 4), median, q3.and_then(quartile)) {
        (Some(q1), Some(median), Some(q3)) => format!("{q1:.3}/{median:.3}/{q3:.3}"),
        _ => "-".to_string(),
    }
}

/// One subject's rows in a table.
pub(crate) struct Row<'a> {
    /// The subject's name.
    pub(crate) name: &'a str,
    /// What its 64-in-flight pattern is called (raw echo has its own).
    pub(crate) buffered: &'a str,
    /// Its figures.
    pub(crate) figures: Figures,
}

/// Prints one runtime's table: a row per subject and pattern.
pub(crate) fn print_table(runtime: &str, chunks: usize, subjects: &[Row<'_>]) {
    println!("== {runtime} runtime (medians over {chunks} chunks) ==");
    println!(
        "{:<14} {:<24} {:>16} {:>14} {:>14} {:>12}",
        "subject", "pattern", "result", "client w/call", "server w/call", "allocs/call"
    );
    let per_call = |w: Option<f64>| w.map_or("-".to_string(), |w| format!("{w:.3}"));
    for Row {
        name,
        buffered,
        figures,
    } in subjects
    {
        let rows = [
            ("sequential", Some(&figures.seq), "µs RTT"),
            (*buffered, Some(&figures.buffered), "calls/s"),
            ("64 tasks", figures.tasks.as_ref(), "calls/s"),
        ];
        for (pattern, sample, unit) in rows {
            let Some(s) = sample else {
                println!("{name:<14} {pattern:<24} {:>16}", "n/a");
                continue;
            };
            let result = if unit == "µs RTT" {
                format!("{:.1} {unit}", s.value)
            } else {
                format!("{:.0} {unit}", s.value)
            };
            println!(
                "{name:<14} {pattern:<24} {result:>16} {:>14} {:>14} {:>12.1}",
                per_call(s.client_writes),
                per_call(s.server_writes),
                s.allocs
            );
        }
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Measurements of one pattern whose chunks read `values`.
    fn measured(pattern: Pattern, values: &[f64]) -> Measurements {
        let mut m = Measurements::default();
        m.chunks[pattern as usize] = values
            .iter()
            .map(|&value| Chunk {
                value,
                calls: 10,
                writes: Some((1, 2)),
                allocs: 5,
            })
            .collect();
        m
    }

    #[test]
    fn a_ratio_pairs_the_chunks_that_ran_together() {
        // The numerator is a quarter of the denominator at either of the machine's speeds
        // (fast: 8 against 2; slow: 4 against 1). The speed fell during the second pair, and
        // again before the fourth: the two sides' own medians (1 against 8) would say an
        // eighth; the pairs say a quarter, as four of the five pairs do.
        let pattern = Pattern::Buffered;
        let numerator = measured(pattern, &[2.0, 1.0, 2.0, 1.0, 1.0]);
        let denominator = measured(pattern, &[8.0, 8.0, 8.0, 4.0, 4.0]);
        assert_eq!(numerator.figures().buffered.value, 1.0);
        assert_eq!(denominator.figures().buffered.value, 8.0);
        assert_eq!(paired_ratio(&numerator, &denominator, pattern), 0.25);
        assert_eq!(
            paired_quartiles(&numerator, &denominator, pattern),
            "0.250/0.250/0.250"
        );
        assert_eq!(paired_ratio(&denominator, &numerator, pattern), 4.0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![10.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        let pattern = Pattern::Sequential;
        let numerator = measured(pattern, &[1.0, 2.0, 3.0, 4.0]);
        let denominator = measured(pattern, &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!(paired_ratio(&numerator, &denominator, pattern), 2.5);
        assert_eq!(numerator.figures().seq.value, 2.5);
    }

    #[test]
    fn quartiles_are_as_far_from_either_end() {
        let pattern = Pattern::Buffered;
        let ones = measured(pattern, &[1.0; 5]);
        let five = measured(pattern, &[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(paired_quartiles(&five, &ones, pattern), "2.000/3.000/4.000");
        let ones = measured(pattern, &[1.0; 4]);
        let four = measured(pattern, &[4.0, 1.0, 3.0, 2.0]);
        assert_eq!(paired_quartiles(&four, &ones, pattern), "2.000/2.500/3.000");
    }

    #[test]
    fn costs_are_per_call_over_every_chunk() {
        let seq = measured(Pattern::Sequential, &[7.0, 5.0, 6.0])
            .figures()
            .seq;
        assert_eq!(seq.value, 6.0);
        assert_eq!(
            (seq.client_writes, seq.server_writes),
            (Some(0.1), Some(0.2))
        );
        assert_eq!(seq.allocs, 0.5);
        let only_seq = measured(Pattern::Sequential, &[1.0]);
        assert!(only_seq.figures().tasks.is_none());
        assert!(paired_ratio(&only_seq, &only_seq, Pattern::Tasks).is_nan());
        assert_eq!(paired_quartiles(&only_seq, &only_seq, Pattern::Tasks), "-");
    }
}
