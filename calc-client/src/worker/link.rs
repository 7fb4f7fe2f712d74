//! The link of a worker to its broker: logs in, joins, publishes the worker's load, and
//! joins again after a drop or a removal.
//!
//! # The scheduler is a task in each worker
//!
//! The broker hands out "the most able worker", so someone has to tell it how able each
//! worker is: the *scheduler* role of the design, publishing worker added / load changed /
//! removed updates. Here each worker plays that role for itself, in a task next to its
//! server ([`Worker::start`](super::Worker::start) with broker credentials), rather than a separate
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
//! (front ends that know its address can still use it) and reconnects with back-off (from
//! 50 ms, doubling up to [`MAX_RETRY`]; from 50 ms again after a link that worked), joining
//! again. It says so once, not at every attempt: see [`outage`](super::outage). A URL that
//! names something other than a broker (a worker's URL in the worker's credentials, say) is
//! said as such, and retried only after [`FORBIDDEN_RETRY`]. On [`Worker::shutdown`](super::Worker::shutdown) it first publishes `Removed`, so
//! the broker stops handing it out before it stops accepting calls.
//!
//! # Logging in
//!
//! Each connection to the broker logs in with the worker's [`BrokerCredentials`] (a user
//! with the worker role: over TLS, checking the broker's pin) and joins through the session
//! it gets; a reconnect logs in again. A login the broker refuses (wrong user name or
//! password) is logged as an error and retried only after [`FORBIDDEN_RETRY`], as a
//! [`Forbidden`] answer is.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};
use broker_server::{BrokerCredentials, BrokerRef, Forbidden};
use rpc_core::{CallError, RemoteRef};
use tokio::sync::watch;

use super::outage::Outage;
use crate::explain::{Expected, call_cause, connect_cause, wrong_server};

/// How long the publishing task waits after a load change before publishing, so that a
/// burst of changes becomes one update.
pub const COALESCE: Duration = Duration::from_millis(5);

/// The first wait before trying to reach the broker again; it doubles at each failure, up
/// to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// The longest wait between two attempts to reach the broker.
pub const MAX_RETRY: Duration = Duration::from_secs(2);

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

/// The publishing task: joins the broker, publishes load changes, rejoins after a drop.
pub(super) struct BrokerLink {
    pub(super) credentials: BrokerCredentials,
    /// The broker's address, for the log (never its URL's secret).
    pub(super) broker: String,
    pub(super) worker: WorkerId,
    /// The worker's `pbrs://` URL, as published.
    pub(super) addr: String,
    pub(super) capacity: u32,
    pub(super) load: watch::Receiver<u32>,
    pub(super) joined: watch::Sender<bool>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) last_seq: u64,
}

/// Why the link to the broker ended.
enum LinkEnd {
    /// The worker is shutting down.
    Stopped,
    /// The connection is lost or a call failed: reconnect.
    Lost(String),
    /// The broker will not have this worker (its login may not publish about it, or its id
    /// is retired), or the URL names no broker: reconnect only after [`FORBIDDEN_RETRY`].
    /// The text is a whole sentence, logged as an error.
    Refused(String),
}

impl From<Forbidden> for LinkEnd {
    fn from(refused: Forbidden) -> Self {
        LinkEnd::Refused(format!("the broker refused this worker: {refused}"))
    }
}

impl BrokerLink {
    /// Runs until the worker stops: see the [module docs](self).
    pub(super) async fn run(mut self) {
        let mut backoff = FIRST_RETRY;
        let mut outage = Outage::default();
        loop {
            let end = self.session().await;
            let had_link = self.joined.send_replace(false);
            let wait = match end {
                LinkEnd::Stopped => return,
                LinkEnd::Lost(why) => {
                    if had_link {
                        backoff = FIRST_RETRY;
                    }
                    let now = Instant::now();
                    match outage.failed(&self.broker, &why, had_link, MAX_RETRY, now) {
                        Some(line) => tracing::warn!(broker = %self.broker, "{line}"),
                        None => tracing::debug!(broker = %self.broker, "broker unreachable: {why}"),
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_RETRY);
                    wait
                }
                LinkEnd::Refused(why) => {
                    tracing::error!(
                        broker = %self.broker,
                        worker = %self.worker,
                        "{why}; retrying in {FORBIDDEN_RETRY:?}"
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
                        "the broker refused this worker: worker id {} was removed with the highest sequence number there is, \
                         so it can never join again at this broker; start it with another id",
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
                Err(e) => return Err(LinkEnd::Lost(call_cause(&e))),
            }
        }
    }

    /// One connection to the broker: join, then publish load changes until something fails
    /// or the worker stops (in which case `Removed` is published first).
    async fn session(&mut self) -> LinkEnd {
        let mut stop = self.stop.clone();
        let connected = tokio::select! {
            connected = self.credentials.connect() => connected,
            _ = stop.wait_for(|stop| *stop) => return LinkEnd::Stopped,
        };
        let broker = match connected {
            Ok(broker) => broker.with_timeout(BROKER_CALL_TIMEOUT),
            Err(CallError::Login(refused)) => {
                return LinkEnd::Refused(format!(
                    "could not log in as {:?}: {refused}; check the credentials (a user with \
                     the worker role)",
                    self.credentials.credentials.user()
                ));
            }
            Err(e) => {
                return match wrong_server(Expected::Broker, &e) {
                    Some(what) => LinkEnd::Refused(format!(
                        "{} is {what}; the worker cannot join it",
                        self.broker
                    )),
                    None => LinkEnd::Lost(connect_cause(Expected::Broker, &e)),
                };
            }
        };
        let Some(connection) = broker.peer() else {
            return LinkEnd::Lost("the broker's session is not on a connection".into());
        };
        let joined = tokio::select! {
            joined = self.join(&broker) => joined,
            _ = stop.wait_for(|stop| *stop) => {
                connection.close();
                return LinkEnd::Stopped;
            }
        };
        if let Err(end) = joined {
            connection.close();
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
                _ = connection.disconnected() => Event::Disconnected,
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
                        connection.close();
                        return end;
                    }
                    tracing::info!(broker = %self.broker, worker = %self.worker, "joined the broker again");
                }
                Ok(Ok(other)) => {
                    tracing::debug!(worker = %self.worker, outcome = ?other, "load update");
                }
                Ok(Err(refused)) => {
                    connection.close();
                    return refused.into();
                }
                Err(e) => return LinkEnd::Lost(call_cause(&e)),
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
        connection.close();
        LinkEnd::Stopped
    }
}
