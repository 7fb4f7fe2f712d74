//! Figures: how much faster a CPU-bound job runs on two workers than on one.
//!
//! ```text
//! cargo run --release -p calc-client --example speedup [LIMIT] [RUNS]
//! ```
//!
//! Counts the primes below LIMIT (default 20 million, in 200 chunks) with one worker, then
//! with two, each a worker in this process on its own loopback port with capacity 1 (one
//! chunk at a time, so two workers can keep two cores busy). The front end talks to them
//! directly over TLS, by the workers' `pbrs://` URLs. Each setup runs RUNS times (default 3);
//! the median times and their ratio, `speedup: <t1/t2>`, are printed.
//!
//! The baseline, measured in the same run: the same chunks counted by one plain thread and
//! by two, with no pbrs at all. Its ratio is what the machine itself allows (2 on two idle
//! physical cores; less on virtual CPUs that share a core, or when other programs run), and
//! `efficiency` is the pbrs speed-up as a share of it: what distribution costs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use calc_client::count_primes;

use calc_client::frontend::{self, Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use calc_client::worker::{Worker, WorkerConfig};
use tokio::net::TcpListener;

/// The median of `runs` times of counting `job`'s chunks on `threads` plain threads, each
/// taking the next chunk from a shared counter: the baseline, without pbrs.
fn local_median(job: Job, threads: usize, runs: usize) -> Duration {
    let chunks = job.chunks();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let next = AtomicUsize::new(0);
            let total = AtomicU64::new(0);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| {
                        while let Some(c) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
                            total.fetch_add(count_primes(c.start, c.end), Ordering::Relaxed);
                        }
                    });
                }
            });
            let elapsed = start.elapsed();
            println!(
                "  {threads} local thread(s): {:.3}s, total {}",
                elapsed.as_secs_f64(),
                total.into_inner()
            );
            elapsed
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// The median time of `runs` runs of `job` on `workers` fresh workers.
async fn median_time(job: Job, workers: u32, runs: usize) -> Duration {
    let mut started = Vec::new();
    for id in 1..=workers {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let worker = Worker::start(listener, WorkerConfig::new(id).capacity(1)).expect("worker");
        started.push(worker);
    }
    let urls = Workers::Direct(started.iter().map(|w| w.url().to_string()).collect());
    let options = Options::default().progress(ProgressMode::Quiet).checks(1);
    let mut times = Vec::new();
    for run in 1..=runs {
        let report = frontend::run(job, &urls, &options).await.expect("the job");
        println!(
            "  {workers} worker(s), run {run}: {:.3}s, total {}",
            report.elapsed.as_secs_f64(),
            report.total
        );
        times.push(report.elapsed);
    }
    for worker in started {
        worker.shutdown().await;
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let limit = args
        .next()
        .map_or(Job::DEFAULT_LIMIT, |a| a.parse().expect("LIMIT: a number"));
    let runs: usize = args
        .next()
        .map_or(3, |a| a.parse().expect("RUNS: a number"));
    let job = Job::new(limit);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "primes below {limit} in {} chunks of {}, {runs} run(s) per setup, {cpus} CPU(s)",
        job.chunks().len(),
        job.chunk
    );
    let local_one = local_median(job, 1, runs);
    let local_two = local_median(job, 2, runs);
    let one = median_time(job, 1, runs).await;
    let two = median_time(job, 2, runs).await;
    let baseline = local_one.as_secs_f64() / local_two.as_secs_f64();
    let speedup = one.as_secs_f64() / two.as_secs_f64();
    println!("1 local thread:  {:.3}s (median)", local_one.as_secs_f64());
    println!("2 local threads: {:.3}s (median)", local_two.as_secs_f64());
    println!("1 worker:        {:.3}s (median)", one.as_secs_f64());
    println!("2 workers:       {:.3}s (median)", two.as_secs_f64());
    println!("baseline speedup (threads, no pbrs): {baseline:.2}");
    println!("speedup: {speedup:.2}");
    println!(
        "efficiency: {:.0}% of the baseline",
        100.0 * speedup / baseline
    );
}
