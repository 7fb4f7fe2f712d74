//! The front end: spreads a [`Job`]'s chunks over workers, survives workers that die, checks
//! and totals the results.
//!
//! # Two ways to find workers
//!
//! - **Directly** ([`Workers::Direct`]): a list of worker `pbrs://` URLs (each worker prints
//!   its own, `worker url: pbrs://...`). The front end connects to all of them at the start, asks each its capacity ([`CalculatorRef::info`]), and keeps
//!   `capacity + 1` chunks in flight on each: `capacity` computing and one waiting, so a
//!   worker never idles for a network round trip between two chunks. The next chunk goes to
//!   the worker with the most room.
//! - **Through a broker** ([`Workers::Broker`]): the front end logs in to the broker with
//!   [`BrokerCredentials`] (a user with the front-end role); before sending each chunk it asks
//!   the broker for [`next_worker`](broker_server::BrokerRef::next_worker) — the
//!   head of its queue of most able workers — and sends the chunk there, connecting to the
//!   worker's URL on first use and then reusing one connection per worker. It keeps as many chunks in
//!   flight as the broker's workers can take (the sum of `capacity + 1`, which is the page's
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
//! with the last error: retrying forever would hide a bug. Losing the broker itself fails
//! the job too (a `Broker` error): without it, the front end cannot know which workers are
//! alive. So does a broker that refuses the front end's calls (a `Forbidden` error: the
//! login is not a front end's), at once: asking again would be refused again.
//!
//! # Trust, but verify
//!
//! When all chunks are in, the front end recomputes [`Options::checks`] randomly chosen
//! chunks itself and compares them with what the workers answered, and compares the total
//! with the known value of π when there is one ([`known_prime_count`]). Any difference is
//! an error: a worker computing wrong answers is worse than one that dies.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use broker_server::{BrokerCredentials, BrokerRef, Forbidden, MAX_PAGE};
use rpc_core::tls::ClientTls;
use rpc_core::{CallError, Client, Config, RemoteErrorKind, RemoteRef, SturdyUrl};
use tokio::task::JoinSet;

use crate::calculator::{CalculatorRef, count_primes, known_prime_count};
use crate::job::{Check, Job, JobReport, WorkerStats};
use crate::progress::{Progress, ProgressMode};

/// Broker mode: how often the front end re-reads the broker's worker list to size its
/// window, so that workers joining mid-job get work too.
const RESIZE_EVERY: Duration = Duration::from_secs(1);

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

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Every worker is lost (or the broker offers none), with chunks still to compute.
    #[error("no worker left: {why}; {missing} of {chunks} chunks not computed{details}")]
    NoWorkerLeft {
        /// What happened.
        why: String,
        /// Chunks without an answer.
        missing: usize,
        /// Chunks in the job.
        chunks: usize,
        /// The lost workers and why each was lost (empty, or starting with "; ").
        details: String,
    },
    /// The broker could not be reached, refused the login, or stopped answering.
    #[error("broker {addr}: {source}")]
    Broker {
        /// The broker's address (`host:port`).
        addr: String,
        /// What went wrong.
        source: CallError,
    },
    /// The broker refused a call: the front end's login may not ask for workers. Not worth
    /// retrying: it needs another login.
    #[error("broker {addr} refused the front end: {source}")]
    Forbidden {
        /// The broker's address (`host:port`).
        addr: String,
        /// What was refused, and why.
        source: Forbidden,
    },
    /// One chunk failed too many times.
    #[error("chunk {range:?} failed {attempts} times; the last time, on {worker}: {error}")]
    ChunkFailed {
        /// The chunk.
        range: Range<u64>,
        /// Times it failed.
        attempts: u32,
        /// The worker of the last failure.
        worker: String,
        /// The last failure.
        error: CallError,
    },
    /// A worker's answer differs from the local computation of the same chunk.
    #[error(
        "wrong answer: worker {worker} counted {remote} primes in {range:?}, there are {local}"
    )]
    Mismatch {
        /// The chunk.
        range: Range<u64>,
        /// The worker's address.
        worker: String,
        /// What it answered.
        remote: u64,
        /// What the front end computed.
        local: u64,
    },
    /// The total differs from the known value of π(limit).
    #[error("wrong total: {total} primes below {limit}, but π({limit}) = {known}")]
    WrongTotal {
        /// The job's limit.
        limit: u64,
        /// The total from the workers' answers.
        total: u64,
        /// The known value.
        known: u64,
    },
    /// The job or the worker list makes no sense.
    #[error("{0}")]
    Invalid(String),
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
    if let Some(known) = known_prime_count(job.limit) {
        if report.total != known {
            return Err(JobError::WrongTotal {
                limit: job.limit,
                total: report.total,
                known,
            });
        }
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

/// A worker the front end uses or tried (found by its URL in `Dispatch::by_url`).
struct Slot {
    /// The worker's `host:port`, for reports and logs (never its URL's secret).
    addr: String,
    id: Option<String>,
    calc: Option<CalculatorRef>,
    /// Direct mode: chunks it computes at once, as it said.
    capacity: u32,
    in_flight: u32,
    busy_since: Option<Instant>,
    busy: Duration,
    chunks: usize,
    lost: Option<String>,
}

impl Slot {
    fn new(url: &str, id: Option<String>) -> Slot {
        Slot {
            addr: crate::shown_location(url),
            id,
            calc: None,
            capacity: 1,
            in_flight: 0,
            busy_since: None,
            busy: Duration::ZERO,
            chunks: 0,
            lost: None,
        }
    }

    fn usable(&self) -> bool {
        self.lost.is_none() && self.calc.is_some()
    }
}

/// A finished call.
struct Done {
    chunk: usize,
    slot: usize,
    result: Result<(u64, u32), CallError>,
    at: Instant,
}

enum Mode {
    Direct,
    Broker {
        /// The broker's `host:port`, for errors.
        addr: String,
        broker: BrokerRef,
        /// Chunks to keep in flight.
        window: usize,
        /// When the window was last sized.
        sized: Instant,
    },
}

/// The state of a running job.
struct Dispatch<'a> {
    options: &'a Options,
    chunks: Vec<Range<u64>>,
    pending: VecDeque<usize>,
    attempts: Vec<u32>,
    /// Per chunk: the count and the slot that computed it.
    results: Vec<Option<(u64, usize)>>,
    done: usize,
    retried: usize,
    slots: Vec<Slot>,
    /// The slot of each worker URL.
    by_url: HashMap<String, usize>,
    calls: JoinSet<Done>,
    progress: Progress,
    mode: Mode,
}

/// Connects to the calculator at `url`, over TLS pinned to the URL's fingerprint.
async fn connect_worker(url: &SturdyUrl, config: Config) -> Result<CalculatorRef, CallError> {
    Client::connect_url_with(url, &ClientTls::pinned(url.fingerprint()), config).await
}

/// Closes the connection behind `calc`, which fails its calls in flight at once.
fn close_connection(object: &impl RemoteRef) {
    if let Some(peer) = object.peer() {
        peer.close();
    }
}

/// Whether a call failing with `e` means the worker cannot be used any more.
fn worker_gone(e: &CallError) -> bool {
    match e {
        CallError::Remote { kind, .. } => matches!(
            kind,
            RemoteErrorKind::ShuttingDown
                | RemoteErrorKind::NoSuchMethod
                | RemoteErrorKind::NoSuchObject
                | RemoteErrorKind::BadArguments
        ),
        CallError::FrameTooLarge { .. } | CallError::Encode { .. } => false,
        // Disconnected, Timeout, Io, Protocol, Decode, and anything new.
        _ => true,
    }
}

impl<'a> Dispatch<'a> {
    fn new(chunks: Vec<Range<u64>>, options: &'a Options) -> Self {
        let n = chunks.len();
        Dispatch {
            options,
            pending: (0..n).collect(),
            attempts: vec![0; n],
            results: vec![None; n],
            done: 0,
            retried: 0,
            slots: Vec::new(),
            by_url: HashMap::new(),
            calls: JoinSet::new(),
            progress: Progress::new(options.progress, n),
            mode: Mode::Direct,
            chunks,
        }
    }

    /// The slot of the worker at `url`, made on first use.
    fn slot_for(&mut self, url: &str, id: Option<String>) -> usize {
        if let Some(&slot) = self.by_url.get(url) {
            return slot;
        }
        self.slots.push(Slot::new(url, id));
        self.by_url.insert(url.to_owned(), self.slots.len() - 1);
        self.slots.len() - 1
    }

    /// Direct mode: connects to every worker at once and asks each its capacity.
    async fn connect_all(&mut self, urls: &[SturdyUrl]) {
        let config = self.options.rpc_config();
        let info_timeout = self.options.connect_timeout;
        let connecting = urls.iter().map(|url| {
            let config = config.clone();
            async move {
                let calc = connect_worker(url, config).await?;
                let info = calc.with_timeout(info_timeout).info().await;
                let info = info.inspect_err(|_| close_connection(&calc))?;
                Ok::<_, CallError>((calc, info))
            }
        });
        let connected = futures::future::join_all(connecting).await;
        for (url, connected) in urls.iter().zip(connected) {
            let slot = self.slot_for(&url.to_string(), None);
            match connected {
                Ok((calc, info)) => {
                    let slot = &mut self.slots[slot];
                    slot.id = Some(info.id.to_string());
                    slot.capacity = info.capacity.max(1);
                    slot.calc = Some(calc);
                }
                Err(e) => {
                    self.lose(slot, &format!("could not connect: {e}"));
                }
            }
        }
    }

    /// Broker mode: logs in to the broker and sizes the window.
    async fn connect_broker(&mut self, credentials: &BrokerCredentials) -> Result<(), JobError> {
        let addr = crate::shown_location(&credentials.broker);
        let broker = credentials
            .connect()
            .await
            .map_err(|source| JobError::Broker {
                addr: addr.clone(),
                source,
            })?
            .with_timeout(Duration::from_secs(10));
        self.mode = Mode::Broker {
            addr,
            broker,
            window: 0,
            sized: Instant::now(),
        };
        self.refresh_window().await
    }

    /// Broker mode: chunks to keep in flight = what the listed, not lost, workers can take.
    async fn refresh_window(&mut self) -> Result<(), JobError> {
        let Mode::Broker { addr, broker, .. } = &self.mode else {
            return Ok(());
        };
        let page = broker
            .workers(0, MAX_PAGE)
            .await
            .map_err(|source| JobError::Broker {
                addr: addr.clone(),
                source,
            })?
            .map_err(|source| JobError::Forbidden {
                addr: addr.clone(),
                source,
            })?;
        // Every queued worker takes `capacity + 1`; take out the lost ones the page shows.
        let lost: u64 = page
            .workers
            .iter()
            .filter(|w| {
                self.by_url
                    .get(&w.addr)
                    .is_some_and(|&slot| self.slots[slot].lost.is_some())
            })
            .map(|w| u64::from(w.capacity) + 1)
            .sum();
        let all = page.total_capacity.saturating_add(page.total);
        let window = usize::try_from(all.saturating_sub(lost)).unwrap_or(usize::MAX);
        if let Mode::Broker {
            window: w, sized, ..
        } = &mut self.mode
        {
            *w = window;
            *sized = Instant::now();
        }
        Ok(())
    }

    /// Stops using a worker: closing its connection fails its other calls at once. Returns
    /// `false` if it was already lost.
    fn lose(&mut self, slot: usize, why: &str) -> bool {
        let slot = &mut self.slots[slot];
        if slot.lost.is_some() {
            return false;
        }
        tracing::warn!(worker = %slot.addr, "worker lost: {why}");
        self.progress
            .note(&format!("lost worker {}: {why}", slot.addr));
        slot.lost = Some(why.to_owned());
        if let Some(calc) = slot.calc.take() {
            close_connection(&calc);
        }
        true
    }

    /// Direct mode: the usable worker with the most room, if any has room.
    fn pick_direct(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.usable() && s.in_flight < s.capacity + 1)
            .max_by_key(|(i, s)| (s.capacity + 1 - s.in_flight, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    }

    /// Broker mode: the broker's next worker, connected, unless the window is full or the
    /// broker offers nothing usable right now.
    async fn pick_broker(&mut self) -> Result<Option<usize>, JobError> {
        let Mode::Broker {
            addr,
            broker,
            sized,
            ..
        } = &self.mode
        else {
            return Ok(None);
        };
        let (addr, broker) = (addr.clone(), broker.clone());
        if sized.elapsed() >= RESIZE_EVERY {
            // Workers may have joined (or left) since.
            self.refresh_window().await?;
        }
        if let Mode::Broker { window, .. } = self.mode {
            if self.calls.len() >= window {
                return Ok(None);
            }
        }
        let mut skipped = 0;
        loop {
            let next = broker
                .next_worker()
                .await
                .map_err(|source| JobError::Broker {
                    addr: addr.clone(),
                    source,
                })?
                .map_err(|source| JobError::Forbidden {
                    addr: addr.clone(),
                    source,
                })?;
            let Some(assignment) = next else {
                return Ok(None);
            };
            let slot = self.slot_for(&assignment.addr, Some(assignment.worker.0));
            if self.slots[slot].lost.is_some() {
                // The broker has not noticed yet; it moves on to others as we skip this one.
                skipped += 1;
                if skipped > self.slots.iter().filter(|s| s.lost.is_some()).count() {
                    return Ok(None);
                }
                continue;
            }
            if self.slots[slot].calc.is_none() {
                let connected = match assignment.addr.parse::<SturdyUrl>() {
                    Ok(url) => connect_worker(&url, self.options.rpc_config()).await,
                    Err(e) => Err(e),
                };
                match connected {
                    Ok(calc) => self.slots[slot].calc = Some(calc),
                    Err(e) => {
                        self.lose(slot, &format!("could not connect: {e}"));
                        self.refresh_window().await?;
                        continue;
                    }
                }
            }
            return Ok(Some(slot));
        }
    }

    /// Sends chunk `chunk` to the worker in `slot`.
    fn send(&mut self, chunk: usize, slot: usize) {
        let s = &mut self.slots[slot];
        let calc = s.calc.clone().expect("only usable workers are picked");
        s.in_flight += 1;
        s.busy_since.get_or_insert_with(Instant::now);
        let range = self.chunks[chunk].clone();
        self.calls.spawn(async move {
            let result = calc.count_primes(range.start, range.end).await;
            Done {
                chunk,
                slot,
                result,
                at: Instant::now(),
            }
        });
    }

    /// Sends chunks while workers have room, waits for answers, until every chunk is in.
    async fn run(&mut self) -> Result<(), JobError> {
        let mut stalled_since: Option<Instant> = None;
        while self.done < self.chunks.len() {
            while !self.pending.is_empty() {
                let picked = match self.mode {
                    Mode::Direct => self.pick_direct(),
                    Mode::Broker { .. } => self.pick_broker().await?,
                };
                let Some(slot) = picked else { break };
                let chunk = self.pending.pop_front().expect("not empty");
                self.send(chunk, slot);
            }
            if self.calls.is_empty() {
                // Chunks wait, nothing is in flight, and no worker takes them.
                match &self.mode {
                    Mode::Direct => return Err(self.no_worker_left("every worker is lost".into())),
                    Mode::Broker { addr, .. } => {
                        let since = *stalled_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.options.no_worker_grace {
                            let why = format!(
                                "the broker at {addr} offered no usable worker for {:?}",
                                self.options.no_worker_grace
                            );
                            return Err(self.no_worker_left(why));
                        }
                        // Give the broker time to hear of a worker (or of a loss).
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        self.refresh_window().await?;
                        continue;
                    }
                }
            }
            stalled_since = None;
            let done = self
                .calls
                .join_next()
                .await
                .expect("calls is not empty")
                .expect("a call task neither panics nor is aborted");
            self.complete(done).await?;
        }
        Ok(())
    }

    /// Records an answer, or puts the chunk back for another worker.
    async fn complete(&mut self, done: Done) -> Result<(), JobError> {
        let s = &mut self.slots[done.slot];
        s.in_flight -= 1;
        if s.in_flight == 0 {
            if let Some(since) = s.busy_since.take() {
                s.busy += done.at.saturating_duration_since(since);
            }
        }
        match done.result {
            Ok((count, id)) => {
                s.chunks += 1;
                s.id = Some(id.to_string());
                if self.results[done.chunk].is_none() {
                    self.results[done.chunk] = Some((count, done.slot));
                    self.done += 1;
                    self.progress.set(self.done);
                }
            }
            Err(error) => {
                let addr = s.addr.clone();
                self.retried += 1;
                tracing::debug!(worker = %addr, chunk = ?self.chunks[done.chunk], "chunk failed: {error}");
                if worker_gone(&error) {
                    // Not the chunk's fault: it is retried on the workers left, however many
                    // die under it; the job fails only when none is left. The window is
                    // re-sized once per lost worker, not once per chunk it had.
                    if self.lose(done.slot, &error.to_string()) {
                        self.refresh_window().await?;
                    }
                } else {
                    self.attempts[done.chunk] += 1;
                }
                if self.attempts[done.chunk] >= self.options.max_attempts {
                    return Err(JobError::ChunkFailed {
                        range: self.chunks[done.chunk].clone(),
                        attempts: self.attempts[done.chunk],
                        worker: addr,
                        error,
                    });
                }
                self.pending.push_front(done.chunk);
            }
        }
        Ok(())
    }

    fn no_worker_left(&self, why: String) -> JobError {
        let mut details = String::new();
        for s in self.slots.iter().filter(|s| s.lost.is_some()) {
            let _ = write!(
                details,
                "; {} lost ({})",
                s.addr,
                s.lost.as_deref().unwrap_or("")
            );
        }
        JobError::NoWorkerLeft {
            why,
            missing: self.chunks.len() - self.done,
            chunks: self.chunks.len(),
            details,
        }
    }

    /// Closes every connection (calls still in flight are dropped, which cancels them).
    fn close(&mut self) {
        self.calls.abort_all();
        for slot in &mut self.slots {
            if let Some(calc) = slot.calc.take() {
                close_connection(&calc);
            }
        }
        if let Mode::Broker { broker, .. } = &self.mode {
            close_connection(broker);
        }
    }

    /// Checks a random sample of chunks locally, and builds the report.
    async fn into_report(self, job: Job, elapsed: Duration) -> Result<JobReport, JobError> {
        let results: Vec<(u64, usize)> = self
            .results
            .iter()
            .map(|r| r.expect("every chunk has an answer"))
            .collect();
        let amount = self.options.checks.min(results.len());
        let mut sample =
            rand::seq::index::sample(&mut rand::rng(), results.len(), amount).into_vec();
        sample.sort_unstable();
        let ranges: Vec<Range<u64>> = sample.iter().map(|&i| self.chunks[i].clone()).collect();
        let local = tokio::task::spawn_blocking(move || {
            ranges
                .into_iter()
                .map(|r| (count_primes(r.start, r.end), r))
                .collect::<Vec<_>>()
        })
        .await
        .expect("counting primes does not panic");
        let mut checks = Vec::new();
        for (&chunk, (local, range)) in sample.iter().zip(local) {
            let (remote, slot) = results[chunk];
            let worker = self.slots[slot].addr.clone();
            if remote != local {
                return Err(JobError::Mismatch {
                    range,
                    worker,
                    remote,
                    local,
                });
            }
            checks.push(Check {
                range,
                count: local,
                worker,
            });
        }
        Ok(JobReport {
            job,
            total: results.iter().map(|(count, _)| count).sum(),
            chunks: results.len(),
            retried: self.retried,
            workers: self
                .slots
                .into_iter()
                .map(|s| WorkerStats {
                    id: s.id,
                    addr: s.addr,
                    chunks: s.chunks,
                    busy: s.busy,
                    lost: s.lost,
                })
                .collect(),
            checks,
            known_total: known_prime_count(job.limit).is_some(),
            elapsed,
        })
    }
}
