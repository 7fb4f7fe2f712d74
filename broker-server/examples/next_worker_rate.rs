//! How many `next_worker` calls per second one connection gets from a broker, with 1,000 and
//! with 100,000 workers registered.
//!
//! ```text
//! cargo run --release -p broker-server --example next_worker_rate
//! ```
//!
//! Starts a broker in process on a loopback port ([`broker_server::spawn_on`]), over TLS with
//! a generated identity and one admin user with a random password; logs in as that user over
//! one connection (an admin may publish about any number of workers, and ask for them);
//! registers the workers over it with `publish` (Added updates, pipelined: a batch of calls in
//! flight at once with [`join_all`]), then, for each size, measures for a fixed time:
//!
//! - `WorkerQueue::next` on a queue of the same workers, in process: the baseline, the cost
//!   of the O(log n) queue operation alone;
//! - `next_worker` through a local `BrokerRef` (no connection: the service's mutex and the
//!   call machinery);
//! - `next_worker` over TLS on one connection, one call at a time (a round trip per call);
//! - the same with 64 calls in flight (pipelined: the rpc-core writer batches frames).
//!
//! It prints calls per second and each rate as a fraction of the baseline, measured in the
//! same run. Figures depend on the machine; compare the rows and ratios, not the absolute
//! numbers.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use broker_server::queue::{Applied, Change, WorkerId, WorkerQueue, WorkerUpdate};
use broker_server::{Access, BrokerCredentials, BrokerRef, BrokerService, Role, Users};
use futures::future::join_all;
use futures::{StreamExt, stream};
use rpc_core::tls::Identity;
use rpc_core::{RemoteRef, SturdyUrl};

/// The numbers of workers registered, in turn.
const SIZES: [usize; 2] = [1_000, 100_000];
/// Registration calls in flight at once (below the broker's default limit of 1,024 calls in
/// flight per connection).
const REGISTER_BATCH: usize = 500;
/// Calls in flight in the pipelined measurement.
const IN_FLIGHT: usize = 64;
/// How long each rate is measured for.
const MEASURE_FOR: Duration = Duration::from_secs(2);

/// The Added update of worker number `i`: capacities from 1 to 16, so the queue has many
/// distinct positions.
fn worker(i: usize) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId(format!("w{i:06}")),
        seq: 1,
        change: Change::Added {
            addr: format!("10.0.{}.{}:8992", i / 256 % 256, i % 256),
            capacity: 1 + (i % 16) as u32,
            load: 0,
        },
    }
}

/// Calls per second.
fn rate(calls: u64, elapsed: Duration) -> f64 {
    calls as f64 / elapsed.as_secs_f64()
}

/// `WorkerQueue::next` in process, on a queue of `size` workers.
fn queue_rate(size: usize) -> f64 {
    let mut queue = WorkerQueue::new();
    for i in 0..size {
        queue.update(worker(i));
    }
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < MEASURE_FOR {
        for _ in 0..1024 {
            black_box(queue.next());
        }
        calls += 1024;
    }
    rate(calls, start.elapsed())
}

/// `next_worker` through `broker`, one call at a time.
async fn sequential_rate(broker: &BrokerRef) -> Result<f64, Box<dyn Error>> {
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < MEASURE_FOR {
        let assignment = broker.next_worker().await??;
        black_box(assignment.ok_or("no worker handed out")?);
        calls += 1;
    }
    Ok(rate(calls, start.elapsed()))
}

/// `next_worker` through `broker`, [`IN_FLIGHT`] calls at a time.
async fn pipelined_rate(broker: &BrokerRef) -> Result<f64, Box<dyn Error>> {
    let start = Instant::now();
    let mut answers = stream::repeat_with(|| broker.next_worker())
        .buffer_unordered(IN_FLIGHT)
        .take_until(Box::pin(tokio::time::sleep(MEASURE_FOR)));
    let mut calls = 0u64;
    while let Some(answer) = answers.next().await {
        black_box(answer??.ok_or("no worker handed out")?);
        calls += 1;
    }
    Ok(rate(calls, start.elapsed()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Room for the 100,000 workers of the second row and then some (the default limit is
    // exactly 100,000).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let users = Users::new();
    let password = SturdyUrl::new_secret()?;
    users.add("bench", Role::Admin, &password)?;
    let access = Access::tls(users, Identity::generate(&["localhost"])?);
    let running = broker_server::spawn_on(listener, BrokerService::with_limit(200_000), access)?;
    let broker: BrokerRef = BrokerCredentials::new(running.location(), "bench", &password)
        .connect()
        .await?;
    let local = running.broker();

    println!("next_worker calls per second on one connection (each measured for {MEASURE_FOR:?})");
    println!();
    println!(
        "{:>8} | {:>12} | {:>24} | {:>24} | {:>24}",
        "workers",
        "queue.next",
        "local BrokerRef",
        "TLS, 1 at a time",
        format!("TLS, {IN_FLIGHT} in flight"),
    );
    let mut registered = 0;
    let mut notes = Vec::new();
    for size in SIZES {
        let start = Instant::now();
        let all: Vec<usize> = (registered..size).collect();
        for batch in all.chunks(REGISTER_BATCH) {
            for applied in join_all(batch.iter().map(|&i| broker.publish(worker(i)))).await {
                if applied?? != Applied::Added {
                    return Err("a worker was not added".into());
                }
            }
        }
        let registering = start.elapsed();
        registered = size;
        assert_eq!(running.service().len(), size);

        let baseline = queue_rate(size);
        let local = sequential_rate(&local).await?;
        let sequential = sequential_rate(&broker).await?;
        let pipelined = pipelined_rate(&broker).await?;
        let cell = |r: f64| format!("{:>11.0}/s ({:>7.4}×)", r, r / baseline);
        println!(
            "{size:>8} | {:>10.0}/s | {} | {} | {}",
            baseline,
            cell(local),
            cell(sequential),
            cell(pipelined),
        );
        notes.push(format!(
            "{} workers registered in {registering:.2?} ({:.0} publish calls/s, {REGISTER_BATCH} in flight)",
            all.len(),
            rate(all.len() as u64, registering),
        ));
    }
    println!();
    println!("×: the rate as a fraction of queue.next, the in-process baseline of the same row");
    for note in notes {
        println!("{note}");
    }

    if let Some(connection) = broker.peer() {
        connection.close();
    }
    running.shutdown().await;
    Ok(())
}
