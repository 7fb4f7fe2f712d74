//! How many numbers a fib-server hands out per second with 1, 8 and 64 clients calling at
//! once, and how many fsyncs (durable commits) each number costs: group commit at work.
//!
//! `cargo run --release -p examples --example fib_bench [SECONDS]` serves a fresh database in
//! a temporary directory for each measurement, in this process (2 runtime threads, clients
//! included), each client on its own connection calling `next` in a loop for SECONDS (3 by
//! default); three rounds, medians printed.

use std::time::{Duration, Instant};

use examples::fib::service::{FibService, FibonacciRef};
use rpc_core::Client;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One measurement: `clients` callers for `length` on a fresh database; numbers per second
/// and commits per number.
async fn measure(clients: usize, length: Duration) -> Result<(f64, f64), Error> {
    let dir = tempfile::tempdir()?;
    let service = FibService::start("127.0.0.1:0", dir.path(), false).await?;
    let addr = service.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(service.run_until(async {
        let _ = stopped.await;
    }));
    let mut roots = Vec::new();
    for _ in 0..clients {
        let root: FibonacciRef = Client::connect(addr).await?.root().await?;
        roots.push(root);
    }
    let start = Instant::now();
    let end = start + length;
    let callers = roots.iter().cloned().map(|root| async move {
        let mut taken = 0u64;
        while Instant::now() < end {
            root.next().await??;
            taken += 1;
        }
        Ok::<u64, Error>(taken)
    });
    let taken: u64 = futures::future::try_join_all(callers).await?.iter().sum();
    let elapsed = start.elapsed().as_secs_f64();
    let stats = roots[0].stats().await?;
    drop(roots);
    let _ = stop.send(());
    serving.await??;
    Ok((
        taken as f64 / elapsed,
        stats.commits as f64 / stats.numbers as f64,
    ))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let seconds = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("{arg:?} is not a number of seconds"))?,
        None => 3.0,
    };
    let length = Duration::from_secs_f64(seconds);
    println!("load average before: {}", load_average().trim());
    for clients in [1, 8, 64] {
        let (mut rates, mut fsyncs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (rate, per_number) = measure(clients, length).await?;
            rates.push(rate);
            fsyncs.push(per_number);
        }
        let rounds: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{clients:>2} clients: {:.0} numbers/s (rounds: {}), {:.3} fsyncs per number",
            median(rates.clone()),
            rounds.join(", "),
            median(fsyncs),
        );
    }
    println!("load average after: {}", load_average().trim());
    Ok(())
}
