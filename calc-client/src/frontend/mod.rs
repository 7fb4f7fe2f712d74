//! The front end: spreads a [`Job`]'s chunks over workers, survives workers that die, checks
//! and totals the results.
//!
//! # Two ways to find workers
//!
//! - **Directly** ([`Workers::Direct`]): a list of worker `pbrs://` URLs (each worker prints
//!   its own, `worker url: pbrs://...`). The front end connects to all of them at the start,
//!   asks each its capacity ([`CalculatorRef::info`](crate::CalculatorRef::info)), and keeps
//!   `capacity + 1` chunks in flight on each: `capacity` computing and one waiting, so a
//!   worker never idles for a network round trip between two chunks. The next chunk goes to
//!   the worker with the most room.
//! - **Through a broker** ([`Workers::Broker`]): the front end logs in to the broker with
//!   [`BrokerCredentials`] (a user with the front-end role); before sending each chunk it asks
//!   the broker for [`next_worker`](broker_server::BrokerRef::next_worker) — the head of its
//!   queue of most able workers — and sends the chunk there, connecting to the worker's URL on
//!   first use and then reusing one connection per worker. It keeps as many chunks in flight
//!   as the broker's workers can take (the sum of `capacity + 1`, which is the page's
//!   `total_capacity + total`, read with one small `workers(0, MAX_PAGE)` page at the start,
//!   every second, and whenever a worker is lost), so every worker has work, including one
//!   that joins mid-job. Lost workers are left out of the sum when they are on that first
//!   page; a lost worker further down the queue still counts until the broker drops it,
//!   which only makes the window a little larger for a moment.
//!
//! Every connection to a worker is TLS, pinned to the fingerprint in the worker's URL
//! ([`rpc_core::Client::connect_url_with`]); reports and errors show a worker's `host:port`,
//! never its URL's secret.
//!
//! # Failures
//!
//! A call that fails because the worker is gone (`Disconnected`, a timeout, a refused
//! connection, a worker shutting down) marks that worker *lost* for the rest of the job,
//! closes the connection to it — which fails its other chunks in flight at once — and puts
//! every chunk it had back at the front of the queue, to be sent to the other workers. (The
//! same chunk may have been computed twice; it is counted once.) A worker that is lost is not
//! used again in this job, even if the broker still hands it out for the few milliseconds
//! before it notices the loss itself.
//!
//! The job fails only when no worker is left: directly, when every worker is lost; through a
//! broker, when the broker has offered no usable worker for [`Options::no_worker_grace`]
//! while chunks wait and none is in flight. A chunk that fails [`Options::max_attempts`]
//! times in a row for other reasons (a worker's handler panicking, say) fails the job too,
//! with the last error: retrying forever would hide a bug. Losing the broker (its connection
//! closes: it was stopped, killed or restarted) does not: the front end says so once, keeps
//! its workers' connections and chunks in flight, logs in again as soon as the broker is back
//! on the same address (trying with growing waits, up to 30 s), and repeats the broker call
//! that failed (asking for the next worker or the worker list is safe to repeat); the workers
//! join the restarted broker by themselves. A broker that does not come back within 30 s
//! fails the job (a `Broker` error): without it, the front end cannot know which workers are
//! alive. So does a broker that refuses the front end's calls (a `Forbidden` error: the
//! login is not a front end's), at once: asking again would be refused again.
//!
//! # Trust, but verify
//!
//! When all chunks are in, the front end recomputes [`Options::checks`] randomly chosen
//! chunks itself and compares them with what the workers answered, and compares the total
//! with the known value of π when there is one ([`known_prime_count`]). Any difference is
//! an error: a worker computing wrong answers is worse than one that dies.

mod dispatch;
mod error;
mod slot;

use std::time::{Duration, Instant};

use broker_server::BrokerCredentials;
use rpc_core::{Config, SturdyUrl};

use crate::calculator::known_prime_count;
use crate::job::{Job, JobReport};
use crate::progress::ProgressMode;
use dispatch::Dispatch;
pub use error::JobError;

/// Where the workers are.
#[derive(Debug, Clone)]
pub enum Workers {
    /// These workers' `pbrs://` URLs, used directly.
    Direct(Vec<String>),
    /// The workers a broker hands out, logged in to with these credentials (a front-end
    /// user's).
    Broker(BrokerCredentials),
}

/// How a job is run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How to show progress. Default: [`ProgressMode::Auto`].
    pub progress: ProgressMode,
    /// Chunks recomputed locally at the end to check the workers' answers. Default 3.
    pub checks: usize,
    /// Through a broker: how long to wait, with nothing in flight, for the broker to offer a
    /// usable worker before the job fails. Default 3 s.
    pub no_worker_grace: Duration,
    /// Time to connect to a worker or the broker. Default 3 s.
    pub connect_timeout: Duration,
    /// Times one chunk may fail before the job fails. Default 5.
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            progress: ProgressMode::Auto,
            checks: 3,
            no_worker_grace: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            max_attempts: 5,
        }
    }
}

impl Options {
    /// Sets [`progress`](Options::progress).
    pub fn progress(mut self, progress: ProgressMode) -> Self {
        self.progress = progress;
        self
    }

    /// Sets [`checks`](Options::checks).
    pub fn checks(mut self, checks: usize) -> Self {
        self.checks = checks;
        self
    }

    /// Sets [`no_worker_grace`](Options::no_worker_grace).
    pub fn no_worker_grace(mut self, grace: Duration) -> Self {
        self.no_worker_grace = grace;
        self
    }

    /// Sets [`connect_timeout`](Options::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`max_attempts`](Options::max_attempts) (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The connection settings for workers and the broker: the connect timeout, and a
    /// keepalive that notices a worker that hangs (rather than dies) within 10 s.
    fn rpc_config(&self) -> Config {
        Config::default()
            .connect_timeout(self.connect_timeout)
            .keepalive(Duration::from_secs(5), Duration::from_secs(5))
    }
}

/// Runs `job` on `workers`: sends every chunk, retries the chunks of lost workers, shows
/// progress, then checks a sample of chunks locally. Returns the report (print it for the
/// per-worker table and the `total: <n>` line).
pub async fn run(job: Job, workers: &Workers, options: &Options) -> Result<JobReport, JobError> {
    let chunks = job.chunks();
    let mut dispatch = Dispatch::new(chunks, options);
    let started = Instant::now();
    match workers {
        Workers::Direct(urls) => {
            if urls.is_empty() {
                return Err(JobError::Invalid("no worker URL given".into()));
            }
            let urls = parse_worker_urls(urls)?;
            dispatch.connect_all(&urls).await;
        }
        Workers::Broker(credentials) => dispatch.connect_broker(credentials).await?,
    }
    let outcome = dispatch.run().await;
    dispatch.progress.finish();
    dispatch.close();
    outcome?;
    let elapsed = started.elapsed();
    let report = dispatch.into_report(job, elapsed).await?;
    if let Some(known) = known_prime_count(job.limit)
        && report.total != known
    {
        return Err(JobError::WrongTotal {
            limit: job.limit,
            total: report.total,
            known,
        });
    }
    Ok(report)
}

/// Parses the URLs of direct mode, saying what to give instead of a plain address.
fn parse_worker_urls(urls: &[String]) -> Result<Vec<SturdyUrl>, JobError> {
    urls.iter()
        .map(|url| {
            url.parse::<SturdyUrl>().map_err(|e| {
                JobError::Invalid(format!(
                    "{e}; workers serve TLS only and are reached by their pbrs:// URL, which \
                     calc-worker prints at start as `worker url: pbrs://...`"
                ))
            })
        })
        .collect()
}
