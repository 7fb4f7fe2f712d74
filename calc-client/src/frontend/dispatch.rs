//! [`Dispatch`]: the state of a running job, and the loop that sends chunks, takes answers,
//! retries the chunks of lost workers, and checks the results at the end.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use broker_server::{BrokerCredentials, BrokerRef, Forbidden, MAX_PAGE};
use rpc_core::reconnect::Backoff;
use rpc_core::{CallError, RemoteRef, SturdyUrl};
use tokio::task::JoinSet;

use super::slot::{Done, Mode, Slot, close_connection, connect_worker, worker_gone};
use super::{JobError, Options};
use crate::calculator::{count_primes, known_prime_count};
use crate::explain::{Expected, call_failure, connect_failure, wrong_server};
use crate::job::{Check, Job, JobReport, WorkerStats};
use crate::progress::Progress;

/// Broker mode: how often the front end re-reads the broker's worker list to size its
/// window, so that workers joining mid-job get work too.
const RESIZE_EVERY: Duration = Duration::from_secs(1);

/// Broker mode: how long the front end waits for a lost broker to come back (restarted on
/// the same address) before the job fails.
const BROKER_RETURN: Duration = Duration::from_secs(30);

/// Broker mode: after the broker came back, how long its workers may take to join it again
/// (they retry every 2 s at most) before the lack of workers fails the job.
const REJOIN_GRACE: Duration = Duration::from_secs(10);

/// The state of a running job.
pub(super) struct Dispatch<'a> {
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
    pub(super) progress: Progress,
    mode: Mode,
    /// Broker mode: when the front end last logged in again to a broker that came back.
    broker_back: Option<Instant>,
}

/// The answer of a call to the broker at `addr`, or the job's error: the call failed, or the
/// broker refused it (the login's role may not make it).
fn broker_answer<T>(
    addr: &str,
    answer: Result<Result<T, Forbidden>, CallError>,
) -> Result<T, JobError> {
    let addr = addr.to_owned();
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(JobError::Forbidden { addr, source }),
        Err(source) => Err(JobError::Broker { addr, source }),
    }
}

impl<'a> Dispatch<'a> {
    pub(super) fn new(chunks: Vec<Range<u64>>, options: &'a Options) -> Self {
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
            broker_back: None,
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
    pub(super) async fn connect_all(&mut self, urls: &[SturdyUrl]) {
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
                    self.lose(slot, &connect_failure(Expected::Worker, &e), false);
                }
            }
        }
    }

    /// Broker mode: logs in to the broker and sizes the window.
    pub(super) async fn connect_broker(
        &mut self,
        credentials: &BrokerCredentials,
    ) -> Result<(), JobError> {
        let addr = crate::shown_location(&credentials.broker);
        let broker = match credentials.connect().await {
            Ok(broker) => broker.with_timeout(Duration::from_secs(10)),
            Err(source) => {
                return Err(match wrong_server(Expected::Broker, &source) {
                    Some(what) => JobError::NotABroker { addr, what },
                    None => JobError::Broker { addr, source },
                });
            }
        };
        self.mode = Mode::Broker {
            addr,
            broker,
            credentials: credentials.clone(),
            window: 0,
            sized: Instant::now(),
        };
        self.refresh_window().await
    }

    /// Broker mode: chunks to keep in flight = what the listed, not lost, workers can take.
    async fn refresh_window(&mut self) -> Result<(), JobError> {
        if !matches!(self.mode, Mode::Broker { .. }) {
            return Ok(());
        }
        let page = self
            .broker_call(|broker| async move { broker.workers(0, MAX_PAGE).await })
            .await?;
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

    /// Broker mode: `call` on the broker. When the broker is lost (`Disconnected`: it was
    /// stopped or restarted), the front end says so once, waits up to [`BROKER_RETURN`] for
    /// it to come back on the same address, logs in again and repeats `call`; the workers'
    /// connections are not touched, and chunks in flight go on meanwhile.
    async fn broker_call<T, F, Fut>(&mut self, call: F) -> Result<T, JobError>
    where
        F: Fn(BrokerRef) -> Fut,
        Fut: Future<Output = Result<Result<T, Forbidden>, CallError>>,
    {
        let mut lost_at: Option<Instant> = None;
        loop {
            let Mode::Broker { addr, broker, .. } = &self.mode else {
                unreachable!("only called in broker mode");
            };
            let addr = addr.clone();
            let error = match call(broker.clone()).await {
                Err(error) if error.is_disconnected() => error,
                answer => return broker_answer(&addr, answer),
            };
            let since = *lost_at.get_or_insert_with(Instant::now);
            self.reconnect_broker(&addr, error, since).await?;
        }
    }

    /// Broker mode: the broker at `addr` was lost (with `error`) at `since`: logs in again,
    /// trying with growing waits until [`BROKER_RETURN`] after `since`.
    async fn reconnect_broker(
        &mut self,
        addr: &str,
        error: CallError,
        since: Instant,
    ) -> Result<(), JobError> {
        let Mode::Broker { credentials, .. } = &self.mode else {
            unreachable!("only called in broker mode");
        };
        let credentials = credentials.clone();
        self.progress.note(&format!(
            "lost the broker at {addr} ({}); waiting up to {BROKER_RETURN:?} for it to come \
             back, chunks in flight go on",
            call_failure(&error)
        ));
        let backoff = Backoff::new(Duration::from_millis(50), 2.0, Duration::from_secs(1));
        let mut last = error;
        for failures in 0.. {
            let left = BROKER_RETURN.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(JobError::Broker {
                    addr: addr.to_owned(),
                    source: last,
                });
            }
            match tokio::time::timeout(left, credentials.connect()).await {
                Ok(Ok(broker)) => {
                    self.progress
                        .note(&format!("logged in to the broker at {addr} again"));
                    if let Mode::Broker { broker: b, .. } = &mut self.mode {
                        close_connection(b);
                        *b = broker.with_timeout(Duration::from_secs(10));
                    }
                    self.broker_back = Some(Instant::now());
                    return Ok(());
                }
                Ok(Err(e)) => last = e,
                Err(_) => continue,
            }
            let wait = backoff.ceiling(failures).min(left);
            tokio::time::sleep(wait).await;
        }
        unreachable!("the loop returns")
    }

    /// Stops using a worker, for the reason `why`, and says so ([`Slot::lost_note`]); closing
    /// its connection fails its other calls at once. `had_chunks`: it was given chunks, which
    /// go back to the queue. Returns `false` if it was already lost.
    fn lose(&mut self, slot: usize, why: &str, had_chunks: bool) -> bool {
        let slot = &mut self.slots[slot];
        if slot.lost.is_some() {
            return false;
        }
        self.progress.note(&slot.lost_note(why, had_chunks));
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
        let Mode::Broker { sized, .. } = &self.mode else {
            return Ok(None);
        };
        if sized.elapsed() >= RESIZE_EVERY {
            // Workers may have joined (or left) since.
            self.refresh_window().await?;
        }
        if let Mode::Broker { window, .. } = self.mode
            && self.calls.len() >= window
        {
            return Ok(None);
        }
        let mut skipped = 0;
        loop {
            // Safe to repeat if the broker is lost meanwhile: it only hands out a worker.
            let next = self
                .broker_call(|broker| async move { broker.next_worker().await })
                .await?;
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
                        self.lose(slot, &connect_failure(Expected::Worker, &e), false);
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
        // A chunk computes for as long as it takes (it may also wait for a free slot at the
        // worker): no deadline. A worker that hangs is noticed by keepalive (`rpc_config`),
        // one that dies by its connection closing; either way the chunk is retried.
        let calc = calc.without_timeout();
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
    pub(super) async fn run(&mut self) -> Result<(), JobError> {
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
                        let rejoining = self
                            .broker_back
                            .is_some_and(|back| back.elapsed() < REJOIN_GRACE);
                        if since.elapsed() >= self.options.no_worker_grace && !rejoining {
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
        if s.in_flight == 0
            && let Some(since) = s.busy_since.take()
        {
            s.busy += done.at.saturating_duration_since(since);
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
                    if self.lose(done.slot, &call_failure(&error), true) {
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
    pub(super) fn close(&mut self) {
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
    pub(super) async fn into_report(
        self,
        job: Job,
        elapsed: Duration,
    ) -> Result<JobReport, JobError> {
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
