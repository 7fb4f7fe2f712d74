//! The harness: one way to measure every subject, and the table it prints.

use std::future::Future;
use std::time::Instant;

use tokio::runtime::{Builder, Runtime};

use crate::counting::{WriteCounters, allocations};

/// What every call sends and gets back: the harness is `ping(u64) -> u64`. Every bit
/// is used, so that bincode's variable-length integer takes its most bytes (9).
pub(crate) const PAYLOAD: u64 = 0x0123_4567_89ab_cdef;
/// Calls kept in flight in the concurrent patterns.
pub(crate) const IN_FLIGHT: usize = 64;
/// Rounds per subject; every figure is the median over them.
pub(crate) const ROUNDS: usize = 3;

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

/// How much to measure.
pub(crate) struct Plan {
    /// Sequential calls before measuring, each round.
    pub(crate) seq_warmup: usize,
    /// Sequential calls timed one by one, each round.
    pub(crate) seq_samples: usize,
    /// Calls per concurrent pattern, each round.
    pub(crate) inflight_calls: usize,
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

/// A subject's figures for every pattern (medians over the rounds).
#[derive(Clone, Copy, Default)]
pub(crate) struct Figures {
    /// One call at a time.
    pub(crate) seq: Sample,
    /// 64 in flight through `buffer_unordered` (raw echo: its pipelined loop).
    pub(crate) buffered: Sample,
    /// 64 tasks sharing one client, if the subject has a shareable client.
    pub(crate) tasks: Option<Sample>,
}

/// Runs `work` (`calls` calls), and returns what `value` makes of its result along with the
/// writes and allocations per call it cost.
async fn costed<T>(
    calls: usize,
    writes: Option<&WriteCounters>,
    work: impl Future<Output = T>,
    value: impl FnOnce(T) -> f64,
) -> Sample {
    let before = (writes.map(WriteCounters::get), allocations());
    let result = work.await;
    let after = (writes.map(WriteCounters::get), allocations());
    let per_call = |n: u64| n as f64 / calls as f64;
    let (client_writes, server_writes) = match (before.0, after.0) {
        (Some((c0, s0)), Some((c1, s1))) => (Some(per_call(c1 - c0)), Some(per_call(s1 - s0))),
        _ => (None, None),
    };
    Sample {
        value: value(result),
        client_writes,
        server_writes,
        allocs: per_call(after.1 - before.1),
    }
}

/// Measures one round of every pattern on `subject`.
pub(crate) async fn round<S: Subject>(subject: &mut S, plan: &Plan) -> Figures {
    for _ in 0..plan.seq_warmup {
        subject.round_trip().await;
    }
    let writes = subject.writes().cloned();
    let seq = costed(
        plan.seq_samples,
        writes.as_ref(),
        async {
            let mut rtts = Vec::with_capacity(plan.seq_samples);
            for _ in 0..plan.seq_samples {
                let start = Instant::now();
                subject.round_trip().await;
                rtts.push(start.elapsed());
            }
            rtts
        },
        |mut rtts| {
            rtts.sort();
            rtts[rtts.len() / 2].as_secs_f64() * 1e6
        },
    )
    .await;
    let calls = plan.inflight_calls;
    let rate = |start: Instant| calls as f64 / start.elapsed().as_secs_f64();
    subject.buffered(calls / 10).await;
    let buffered = costed(
        calls,
        writes.as_ref(),
        async {
            let start = Instant::now();
            subject.buffered(calls).await;
            start
        },
        rate,
    )
    .await;
    let mut tasks = None;
    if S::SHARED_CLIENT {
        subject.tasks(calls / 10).await;
        let sample = costed(
            calls,
            writes.as_ref(),
            async {
                let start = Instant::now();
                subject.tasks(calls).await;
                start
            },
            rate,
        )
        .await;
        tasks = Some(sample);
    }
    Figures {
        seq,
        buffered,
        tasks,
    }
}

/// The median of each figure over the rounds.
pub(crate) fn median(rounds: &[Figures]) -> Figures {
    let med = |f: &dyn Fn(&Figures) -> Option<f64>| -> Option<f64> {
        let mut values: Vec<f64> = rounds.iter().filter_map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied()
    };
    let sample = |pick: &dyn Fn(&Figures) -> Option<Sample>| -> Option<Sample> {
        pick(rounds.first()?)?;
        Some(Sample {
            value: med(&|f| pick(f).map(|s| s.value))?,
            client_writes: med(&|f| pick(f)?.client_writes),
            server_writes: med(&|f| pick(f)?.server_writes),
            allocs: med(&|f| pick(f).map(|s| s.allocs))?,
        })
    };
    Figures {
        seq: sample(&|f| Some(f.seq)).unwrap_or_default(),
        buffered: sample(&|f| Some(f.buffered)).unwrap_or_default(),
        tasks: sample(&|f| f.tasks),
    }
}

/// One subject's rows in a table.
pub(crate) struct Row<'a> {
    /// The subject's name.
    pub(crate) name: &'a str,
    /// What its 64-in-flight pattern is called (raw echo has its own).
    pub(crate) buffered: &'a str,
    /// Its figures.
    pub(crate) figures: &'a Figures,
}

/// Prints one runtime's table: a row per subject and pattern.
pub(crate) fn print_table(runtime: &str, subjects: &[Row<'_>]) {
    println!("== {runtime} runtime (medians of {ROUNDS} rounds) ==");
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
