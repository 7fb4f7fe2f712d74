//! Figures: how much faster a CPU-bound job runs on two workers than on one.
//!
//! ```text
//! cargo run --release -p calc-client --example speedup [LIMIT] [RUNS]
//! ```
//!
//! Counts the primes below LIMIT (default 20 million, in 200 chunks) with one worker, then
//! with two, each a worker in this process on its own loopback port with capacity 1 (one
//! chunk at a time, so two workers can keep two cores busy). The front end talks to them
//! directly over TCP. Each setup runs RUNS times (default 3); the median times and their
//! ratio, `speedup: <t1/t2>`, are printed. On a machine with two idle cores the ideal is 2;
//! the distribution costs show in how far below it the ratio stays.

use std::time::Duration;

use calc_client::frontend::{self, Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use calc_client::worker::{Worker, WorkerConfig};
use tokio::net::TcpListener;

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
    let addrs = Workers::Direct(started.iter().map(|w| w.local_addr().to_string()).collect());
    let options = Options::default().progress(ProgressMode::Quiet).checks(1);
    let mut times = Vec::new();
    for run in 1..=runs {
        let report = frontend::run(job, &addrs, &options).await.expect("the job");
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
    let one = median_time(job, 1, runs).await;
    let two = median_time(job, 2, runs).await;
    println!("1 worker:  {:.3}s (median)", one.as_secs_f64());
    println!("2 workers: {:.3}s (median)", two.as_secs_f64());
    println!("speedup: {:.2}", one.as_secs_f64() / two.as_secs_f64());
}
