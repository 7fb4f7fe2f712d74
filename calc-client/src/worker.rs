//! A calculator worker: serves a [`Calculator`] on a TCP listener, and (optionally) keeps a
//! broker told how busy it is.
//!
//! # Capacity and load
//!
//! A worker has a *capacity*: how many chunks it computes at once (by default one per CPU).
//! Each [`count_primes`](CalculatorRef::count_primes) call takes one of `capacity` slots
//! (a semaphore) for as long as it computes, on tokio's blocking pool; calls beyond the
//! capacity wait for a slot without holding a thread. Its *load* is the number of chunks it
//! has: computing or waiting. Cheap calls (`calculate`, `info`) take no slot, so they are
//! answered at once even when every slot is busy.
//!
//! # The scheduler is a task in each worker
//!
//! The broker hands out "the most able worker", so someone has to tell it how able each
//! worker is: the *scheduler* role of the design, publishing worker added / load changed /
//! removed updates. Here each worker plays that role for itself, in a task next to its
//! server ([`Worker::start`] with a broker address), rather than a separate
//! `calc-scheduler` process that would watch all workers. The reasons:
//!
//! - **Only the worker knows its load first-hand.** Its load changes the instant a call
//!   arrives or finishes; it can publish that at once. A separate scheduler would have to
//!   poll every worker (late, and extra traffic) or be told by each of them (the same
//!   messages, with one more hop).
//! - **Liveness comes for free.** `join` ties a worker's queue entry to the connection it was
//!   made on: when the worker dies, the kernel closes its socket and the broker drops it at
//!   once. A scheduler would have to detect the death of other processes itself, with
//!   timeouts, and would be late by at least one of them.
//! - **No extra process, no single point of failure.** Nothing to deploy, start in order and
//!   monitor; a dead scheduler cannot leave the broker with a stale picture of every worker.
//!
//! The cost is that every worker needs the broker's address, and the broker hears from N
//! publishers instead of one — harmless, since updates carry per-worker sequence numbers.
//!
//! # Publishing
//!
//! The publishing task never holds up a call: handlers record the load in a
//! [`tokio::sync::watch`] channel, which never blocks, and the task publishes the *latest*
//! value. A burst of changes (a front end sending several chunks back to back) is coalesced:
//! the task waits [`COALESCE`] after a change, and changes that arrive while a publish is in
//! flight are folded into the next one.
//!
//! Sequence numbers start from the current time in microseconds and then grow by at least
//! one per update, so a worker restarted with the same id is never mistaken for stale news
//! (the broker ignores an update whose sequence number is not above the last one it applied
//! for that id, and remembers the last one even for a removed worker).
//!
//! # Staying queued
//!
//! A worker that is serving belongs in the broker's queue. When a load update comes back
//! [`Applied::UnknownWorker`] (the broker removed the worker: an admin's `Removed`, say) or
//! [`Applied::Stale`] (someone published newer news of this id, a `Removed` with a higher
//! sequence number, say), the worker does not go on publishing into the void: it *re-joins*
//! at once over the same connection, with an `Added` and a fresh sequence number.
//!
//! A fresh number from the clock is not always enough: a `Removed` may carry a sequence
//! number far ahead of the clock, and every join below it would be `Stale` for ever. So a
//! join answered `Stale` is sent again with its sequence number moved ahead by
//! [`STALE_JUMP`], then by twice that, four times... until one is applied: the gap, whatever
//! it is, is crossed in at most 64 joins, and the number lands at most twice the gap ahead.
//! The worker's later numbers go on from there (so they run ahead of the clock; a worker
//! restarted with the same id catches up the same way). The one gap no number can cross is a
//! `Removed` with sequence number `u64::MAX`: the id is then retired at that broker, the link
//! says so in the log and retries only slowly (the broker may forget the id later). A
//! scheduler or admin that wants a worker gone for good stops the worker itself.
//!
//! A call the broker refuses as [`Forbidden`] (the worker's login may not publish about this
//! worker id) is logged as an error and retried only after [`FORBIDDEN_RETRY`]: asking again
//! at once would be refused again.
//!
//! If the broker cannot be reached, or the connection to it drops, the worker keeps serving
//! (front ends that know its address can still use it) and reconnects with back-off, joining
//! again. On [`Worker::shutdown`] it first publishes `Removed`, so the broker stops handing
//! it out before it stops accepting calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};
use broker_server::{BrokerRef, Forbidden};
use rpc_core::{CallError, Client, Server};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::calculator::{Calculator, CalculatorRef, WorkerInfo, count_primes_until};

/// How long the publishing task waits after a load change before publishing, so that a
/// burst of changes becomes one update.
pub const COALESCE: Duration = Duration::from_millis(5);

/// How long a broker call (join, publish) may take before the worker gives up on it and
/// reconnects.
const BROKER_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How far ahead (in sequence numbers, microseconds of the clock: one second) a join that
/// came back [`Applied::Stale`] is first sent again; the jump doubles at each further
/// `Stale`. See [staying queued](self#staying-queued).
pub const STALE_JUMP: u64 = 1_000_000;

/// How long the worker waits before trying again after the broker refused it as
/// [`Forbidden`], or retired its id.
pub const FORBIDDEN_RETRY: Duration = Duration::from_secs(30);

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The id in every answer and, as a string, the worker's id at the broker.
    pub id: u32,
    /// Chunks computed at once (at least 1).
    pub capacity: u32,
    /// The broker to join, if any.
    pub broker: Option<String>,
    /// The address front ends should use to reach the worker, as told to the broker. `None`:
    /// the listener's own address (right for loopback and for a listener bound to one
    /// interface; not for `0.0.0.0`).
    pub advertise: Option<String>,
}

impl WorkerConfig {
    /// A worker with id `id`, one slot per CPU, and no broker.
    pub fn new(id: u32) -> Self {
        WorkerConfig {
            id,
            capacity: default_capacity(),
            broker: None,
            advertise: None,
        }
    }

    /// Sets [`capacity`](WorkerConfig::capacity).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`broker`](WorkerConfig::broker).
    pub fn broker(mut self, addr: impl Into<String>) -> Self {
        self.broker = Some(addr.into());
        self
    }
}

/// The number of CPUs this process may use (1 if unknown): the default capacity.
pub fn default_capacity() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// The calculator object a worker serves.
struct Calc {
    id: u32,
    capacity: u32,
    slots: Arc<Semaphore>,
    load: watch::Sender<u32>,
}

/// Counts one chunk in the load while it lives.
struct LoadGuard<'a>(&'a watch::Sender<u32>);

impl<'a> LoadGuard<'a> {
    fn enter(load: &'a watch::Sender<u32>) -> Self {
        load.send_modify(|n| *n += 1);
        LoadGuard(load)
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Sets a stop flag when dropped: the handler's future was dropped (the call was cancelled),
/// so the computation on the blocking pool should stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a.wrapping_add(b), self.id)
    }

    async fn remote_count_primes(&self, start: u64, end: u64) -> (u64, u32) {
        let _load = LoadGuard::enter(&self.load);
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slots semaphore is never closed");
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let count = tokio::task::spawn_blocking(move || {
            // The slot is held until the computation really ends, even if the call was
            // cancelled meanwhile: capacity bounds the threads computing.
            let _slot = slot;
            count_primes_until(start, end, &stop)
        })
        .await;
        match count {
            Ok(Some(count)) => (count, self.id),
            // Only a dropped handler sets the flag, and then nobody is here to see this.
            Ok(None) => unreachable!("the stop flag is set only once this future is dropped"),
            // A panic while counting: rpc-core answers the call with a `Panicked` error.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("the runtime is shutting down; the chunk was not counted"),
        }
    }

    async fn remote_info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            capacity: self.capacity,
            load: *self.load.borrow(),
        }
    }
}

/// A running worker: its server and, with a broker, its publishing task.
#[derive(Debug)]
pub struct Worker {
    id: u32,
    local_addr: SocketAddr,
    load: watch::Receiver<u32>,
    joined: watch::Receiver<bool>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    stop_link: watch::Sender<bool>,
    server: JoinHandle<()>,
    link: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts serving a calculator on `listener` (and joining the broker, if configured) in
    /// background tasks; returns at once. Must be called inside a tokio runtime.
    pub fn start(listener: TcpListener, config: WorkerConfig) -> Result<Worker, CallError> {
        let capacity = config.capacity.max(1);
        let (load_tx, load_rx) = watch::channel(0u32);
        let calc = Calc {
            id: config.id,
            capacity,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            load: load_tx,
        };
        let server = Server::from_listener(listener, CalculatorRef::new(calc))?;
        let local_addr = server.local_addr();
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.run_until(async {
            let _ = server_stopped.await;
        }));
        let (joined_tx, joined) = watch::channel(false);
        let (stop_link, link_stopped) = watch::channel(false);
        let link = config.broker.map(|broker| {
            let link = BrokerLink {
                broker,
                worker: WorkerId(config.id.to_string()),
                addr: config.advertise.unwrap_or_else(|| local_addr.to_string()),
                capacity,
                load: load_rx.clone(),
                joined: joined_tx,
                stop: link_stopped,
                last_seq: 0,
            };
            tokio::spawn(link.run())
        });
        tracing::info!(id = config.id, %local_addr, capacity, "worker started");
        Ok(Worker {
            id: config.id,
            local_addr,
            load: load_rx,
            joined,
            stop_server: Some(stop_server),
            stop_link,
            server,
            link,
        })
    }

    /// The worker's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The address the worker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Chunks it has now (computing or waiting for a slot).
    pub fn load(&self) -> u32 {
        *self.load.borrow()
    }

    /// Resolves once the worker is in the broker's queue (its `join` was applied). Never
    /// resolves for a worker without a broker, or while the broker cannot be reached.
    pub async fn joined(&self) {
        let mut joined = self.joined.clone();
        let _ = joined.wait_for(|joined| *joined).await;
        if !*joined.borrow() {
            // The publishing task is gone for good: it will never join.
            std::future::pending::<()>().await;
        }
    }

    /// Stops gracefully: tells the broker the worker is removed (waiting at most a second
    /// for it), then stops accepting calls, lets the calls in flight finish (see
    /// [`rpc_core::Config::shutdown_grace`]) and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop_link.send(true);
        if let Some(link) = self.link.take() {
            let _ = link.await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        tracing::info!(id = self.id, "worker stopped");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the tasks anyway.
        if let Some(link) = &self.link {
            link.abort();
        }
        self.server.abort();
    }
}

/// Binds `listen`, prints `worker <id> listening on <addr>` to stdout, serves until Ctrl-C
/// or SIGTERM, then shuts down gracefully. What the `calc-worker` binary runs.
pub async fn run(listen: &str, config: WorkerConfig) -> Result<(), CallError> {
    let listener = TcpListener::bind(listen).await.map_err(|e| CallError::Io {
        context: format!("could not listen on {listen}"),
        source: e,
    })?;
    let worker = Worker::start(listener, config)?;
    let signal = crate::shutdown_signal(); // before the line: a signal after it is handled
    crate::say(&format!(
        "worker {} listening on {}",
        worker.id(),
        worker.local_addr()
    ));
    signal.await;
    tracing::info!("shutting down");
    worker.shutdown().await;
    Ok(())
}

/// The publishing task: joins the broker, publishes load changes, rejoins after a drop.
struct BrokerLink {
    broker: String,
    worker: WorkerId,
    addr: String,
    capacity: u32,
    load: watch::Receiver<u32>,
    joined: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    last_seq: u64,
}

/// Why the link to the broker ended.
enum LinkEnd {
    /// The worker is shutting down.
    Stopped,
    /// The connection is lost or a call failed: reconnect.
    Lost(String),
    /// The broker will not have this worker (its login may not publish about it, or its id
    /// is retired): reconnect only after [`FORBIDDEN_RETRY`].
    Refused(String),
}

impl From<Forbidden> for LinkEnd {
    fn from(refused: Forbidden) -> Self {
        LinkEnd::Refused(refused.to_string())
    }
}

impl BrokerLink {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let end = self.session().await;
            self.joined.send_replace(false);
            let wait = match end {
                LinkEnd::Stopped => return,
                LinkEnd::Lost(why) => {
                    tracing::warn!(broker = %self.broker, "broker link lost: {why}; retrying in {backoff:?}");
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    wait
                }
                LinkEnd::Refused(why) => {
                    tracing::error!(
                        broker = %self.broker,
                        worker = %self.worker,
                        "the broker refused this worker: {why}; retrying in {FORBIDDEN_RETRY:?}"
                    );
                    FORBIDDEN_RETRY
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// The next sequence number: the current time in microseconds, or one more than the last
    /// one if the clock has not moved on (or went back).
    fn next_seq(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.last_seq = now.max(self.last_seq.saturating_add(1));
        self.last_seq
    }

    /// Joins over `broker` with an `Added` of the worker's current state and a fresh
    /// sequence number, moving the number ahead until the join is not stale (see
    /// [staying queued](self#staying-queued)).
    async fn join(&mut self, broker: &BrokerRef) -> Result<(), LinkEnd> {
        let mut seq = self.next_seq();
        let mut jump = STALE_JUMP;
        loop {
            let join = WorkerUpdate {
                worker: self.worker.clone(),
                seq,
                change: Change::Added {
                    addr: self.addr.clone(),
                    capacity: self.capacity,
                    load: *self.load.borrow_and_update(),
                },
            };
            match broker.join(join).await {
                Ok(Ok(Applied::Added | Applied::Replaced)) => return Ok(()),
                Ok(Ok(Applied::Stale)) if seq == u64::MAX => {
                    return Err(LinkEnd::Refused(format!(
                        "worker id {} was removed with the highest sequence number there is,                          so it can never join again at this broker; start it with another id",
                        self.worker
                    )));
                }
                Ok(Ok(Applied::Stale)) => {
                    // Newer news of this id than our clock (a removal far ahead of it, or
                    // another worker with this id): move past it.
                    tracing::debug!(worker = %self.worker, seq, jump, "join was stale; moving ahead");
                    seq = seq.saturating_add(jump);
                    jump = jump.saturating_mul(2);
                    self.last_seq = seq;
                }
                Ok(Ok(other)) => {
                    return Err(LinkEnd::Lost(format!(
                        "unexpected answer to join: {other:?}"
                    )));
                }
                Ok(Err(refused)) => return Err(refused.into()),
                Err(e) => return Err(LinkEnd::Lost(e.to_string())),
            }
        }
    }

    /// One connection to the broker: join, then publish load changes until something fails
    /// or the worker stops (in which case `Removed` is published first).
    async fn session(&mut self) -> LinkEnd {
        let mut stop = self.stop.clone();
        let connected = tokio::select! {
            connected = Client::connect(&self.broker) => connected,
            _ = stop.wait_for(|stop| *stop) => return LinkEnd::Stopped,
        };
        let client = match connected {
            Ok(client) => client,
            Err(e) => return LinkEnd::Lost(e.to_string()),
        };
        let broker = match client.root::<BrokerRef>().await {
            Ok(broker) => broker.with_timeout(BROKER_CALL_TIMEOUT),
            Err(e) => return LinkEnd::Lost(e.to_string()),
        };
        let joined = tokio::select! {
            joined = self.join(&broker) => joined,
            _ = stop.wait_for(|stop| *stop) => {
                client.close();
                return LinkEnd::Stopped;
            }
        };
        if let Err(end) = joined {
            client.close();
            return end;
        }
        tracing::info!(broker = %self.broker, worker = %self.worker, "joined the broker");
        self.joined.send_replace(true);
        loop {
            enum Event {
                LoadChanged,
                CalculatorGone,
                Disconnected,
                Stop,
            }
            let event = tokio::select! {
                changed = self.load.changed() => match changed {
                    Ok(()) => Event::LoadChanged,
                    Err(_) => Event::CalculatorGone,
                },
                _ = client.disconnected() => Event::Disconnected,
                _ = stop.wait_for(|stop| *stop) => Event::Stop,
            };
            match event {
                Event::LoadChanged => {}
                Event::CalculatorGone => return LinkEnd::Stopped,
                Event::Disconnected => {
                    return LinkEnd::Lost("the connection to the broker closed".into());
                }
                Event::Stop => break,
            }
            // Let the rest of a burst arrive, then publish the latest value.
            let stopping = tokio::select! {
                _ = tokio::time::sleep(COALESCE) => false,
                _ = stop.wait_for(|stop| *stop) => true,
            };
            if stopping {
                break;
            }
            let update = WorkerUpdate {
                worker: self.worker.clone(),
                seq: self.next_seq(),
                change: Change::Load {
                    capacity: self.capacity,
                    load: *self.load.borrow_and_update(),
                },
            };
            match broker.publish(update).await {
                Ok(Ok(Applied::LoadChanged)) => {}
                Ok(Ok(applied @ (Applied::Stale | Applied::UnknownWorker))) => {
                    tracing::warn!(
                        worker = %self.worker,
                        outcome = ?applied,
                        "the broker no longer queues this worker (removed?); joining again"
                    );
                    let rejoined = tokio::select! {
                        joined = self.join(&broker) => joined,
                        _ = stop.wait_for(|stop| *stop) => break,
                    };
                    if let Err(end) = rejoined {
                        client.close();
                        return end;
                    }
                    tracing::info!(broker = %self.broker, worker = %self.worker, "joined the broker again");
                }
                Ok(Ok(other)) => {
                    tracing::debug!(worker = %self.worker, outcome = ?other, "load update");
                }
                Ok(Err(refused)) => {
                    client.close();
                    return refused.into();
                }
                Err(e) => return LinkEnd::Lost(e.to_string()),
            }
        }
        let removed = WorkerUpdate {
            worker: self.worker.clone(),
            seq: self.next_seq(),
            change: Change::Removed,
        };
        match broker
            .with_timeout(Duration::from_secs(1))
            .publish(removed)
            .await
        {
            Ok(Ok(_)) => tracing::info!(worker = %self.worker, "left the broker"),
            Ok(Err(refused)) => {
                tracing::warn!(worker = %self.worker, "the broker refused the removal: {refused}");
            }
            Err(e) => tracing::warn!(worker = %self.worker, "could not tell the broker: {e}"),
        }
        client.close();
        LinkEnd::Stopped
    }
}
