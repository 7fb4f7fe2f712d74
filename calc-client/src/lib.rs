//! # calc-client: the distributed calculation demo
//!
//! Three roles, each a module, each usable as a library and each with a binary:
//!
//! - [`calculator`] — the [`Calculator`] remote trait that workers export, and
//!   [`count_primes`], the CPU-bound job the demo spreads: how many primes lie below N.
//! - [`worker`] — serves a calculator on a port with a given capacity, and keeps a broker
//!   told of its load (`calc-worker`).
//! - [`frontend`] — splits a job into chunks ([`job`]) and spreads them over workers, either
//!   straight to a list of addresses or through the broker's "most able worker" queue,
//!   retrying the chunks of a worker that dies; then checks and totals the results
//!   (`calc-client`).
//!
//! [`demo`] puts a broker and three workers in one process, which is what `calc-client`
//! runs when given no worker or broker address:
//!
//! ```text
//! cargo run --release -p calc-client                  # everything in one process
//! calc-worker --broker 127.0.0.1:8800 --id 1          # or one process per role
//! calc-client --broker 127.0.0.1:8800 --limit 50000000
//! ```

pub mod calculator;
pub mod demo;
pub mod frontend;
pub mod job;
pub mod progress;
pub mod worker;

use std::io::Write;

pub use calculator::{Calculator, CalculatorRef, WorkerInfo, count_primes, known_prime_count};

/// Writes `line` to stdout and flushes it at once (a test or script may be waiting for
/// it). Errors such as a closed pipe are ignored: printing is never worth a panic.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Sends log lines at `level` and above (`error`, `warn`, `info`, `debug`, `trace`, or any
/// `tracing_subscriber` filter such as `calc_client=debug,rpc_core=info`) to stderr; stdout
/// is kept for the program's results. Fails on a filter that does not parse.
pub fn init_logging(level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("bad log level {level:?}: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| e.to_string())
}

/// A future that resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the signal to shut down
/// gracefully. The handlers are installed when this is called, not when the future is first
/// polled, so call it *before* announcing that the program is ready: a signal sent right
/// after the announcement is then never the default, fatal one. Call it inside a tokio
/// runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (interrupt, terminate) => {
                    let error = interrupt.err().or(terminate.err());
                    tracing::warn!("cannot watch for signals: {error:?}; falling back to Ctrl-C");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What the `calc-client` binary does: runs `job` on `workers` — or, when `None`, on a
/// broker and three workers started in this process ([`demo::run`]) — and prints the
/// report (per-worker table, then `total: <n>`) to stdout.
pub async fn client_main(
    workers: Option<frontend::Workers>,
    job: job::Job,
    options: &frontend::Options,
) -> Result<job::JobReport, frontend::JobError> {
    let report = match workers {
        Some(workers) => frontend::run(job, &workers, options).await?,
        None => demo::run(job, options).await?,
    };
    say(&report.to_string());
    Ok(report)
}
