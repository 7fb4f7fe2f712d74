//! # calc-client: the distributed calculation demo
//!
//! Three roles, each a module, each usable as a library and each with a binary:
//!
//! - [`calculator`] — the [`Calculator`] remote trait that workers export, and
//!   [`count_primes`], the CPU-bound job the demo spreads: how many primes lie below N.
//! - [`worker`] — serves a calculator over TLS with a given capacity, reachable only by its
//!   `pbrs://` URL, and keeps a broker told of its load (`calc-worker`).
//! - [`frontend`] — splits a job into chunks ([`job`]) and spreads them over workers, either
//!   straight to a list of worker URLs or through the broker's "most able worker" queue,
//!   retrying the chunks of a worker that dies; then checks and totals the results
//!   (`calc-client`).
//!
//! # Safe on a real network
//!
//! Every connection is TLS, and every server is pinned: a `pbrs://<fingerprint>@host:port/
//! <secret>` URL names the server's certificate and one object on it. Workers and front ends
//! log in to the broker with [`BrokerCredentials`]: the broker's URL, a user name and a
//! password, read from a credentials file (`--credentials FILE`, as `broker-server add-user`
//! writes it) or from the environment ([`PBRS_BROKER_URL`](broker_server::access::ENV_URL),
//! `PBRS_USER`, `PBRS_PASSWORD`), never from the command line, where other users of the host
//! could read it. A worker logs in as a user with the worker role and may join only as the
//! few worker ids it owns; a front end logs in with the front-end role and may only ask for
//! workers. See [`broker_credentials`].
//!
//! When something fails, [`explain`] words it for the person running the demo: which worker
//! or broker, why, and what happens next.
//!
//! [`demo`] puts a broker and three workers in one process, over TLS with logins and random
//! passwords, which is what `calc-client` runs when given no workers and no broker:
//!
//! ```text
//! cargo run --release -p calc-client                     # everything in one process
//! calc-worker --id 1 --credentials worker-1.credentials  # or one process per role
//! calc-client --credentials front-end.credentials --limit 50000000
//! ```

pub mod calculator;
pub mod demo;
pub mod explain;
pub mod frontend;
pub mod job;
pub mod progress;
pub mod worker;

use std::io::Write;
use std::path::Path;

use broker_server::BrokerCredentials;
use broker_server::access::ENV_URL;

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

/// The broker credentials of a worker or front end: from the credentials file `file` when
/// given, else from the environment when [`PBRS_BROKER_URL`](ENV_URL) is set (then
/// `PBRS_USER` and `PBRS_PASSWORD` must be too), else `None`: no broker.
///
/// # Errors
/// A message saying what is missing or wrong, and where.
pub fn broker_credentials(file: Option<&Path>) -> Result<Option<BrokerCredentials>, String> {
    match file {
        Some(file) => BrokerCredentials::from_file(file).map(Some),
        None if std::env::var_os(ENV_URL).is_some() => {
            BrokerCredentials::from_env().map(Some).map_err(|e| {
                format!("{e} ({ENV_URL} is set, so the broker's credentials are read from there)")
            })
        }
        None => Ok(None),
    }
}

/// What `calc-worker` and `calc-client` say to a `--broker` option, which they no longer take.
pub const BROKER_OPTION_GONE: &str = "--broker is gone: a broker is now reached by its pbrs:// \
     URL with a user name and password, never given on the command line. Use --credentials FILE \
     (a file with lines `url = ...`, `user = ...`, `password = ...`, as `broker-server add-user` \
     writes it), or set PBRS_BROKER_URL, PBRS_USER and PBRS_PASSWORD";

/// Where `location` (a `pbrs://` URL, or a plain `host:port`) is, to show to people and in
/// logs: the URL's `host:port`, never its secret.
pub fn shown_location(location: &str) -> String {
    match location.parse::<rpc_core::SturdyUrl>() {
        Ok(url) => url.addr().to_owned(),
        Err(_) if location.starts_with("pbrs://") => "<a malformed pbrs:// URL>".to_owned(),
        Err(_) => location.to_owned(),
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
