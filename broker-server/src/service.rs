//! [`BrokerService`]: the [`Broker`] a broker serves, a [`WorkerQueue`] behind a mutex plus
//! the ties between workers and the connections they joined over.
//!
//! # Joins and connection drops
//!
//! A worker [`join`](Broker::remote_join)s over its own connection. The service applies the
//! update to the queue and, if the worker is now queued, *ties* it to that connection: it
//! registers a disconnect callback ([`Peer::on_disconnect`]) that takes the worker out of the
//! queue ([`WorkerQueue::remove`]) the moment the connection drops. No polling, no timeout: a
//! worker that is killed is gone from the queue as soon as the broker's side of its TCP
//! connection notices (at once for a process that dies; after the keepalive timeout for a
//! host that vanishes).
//!
//! Each tie carries a *join token*, a number that goes up with every join. The service keeps,
//! per worker, only the token of its newest join; a callback whose token is no longer the
//! current one does nothing. So a worker that re-joins over a new connection before (or
//! after) its old one drops is not removed by the old one's drop. An applied
//! [`Change::Removed`] unties the worker as well, and a
//! re-join cancels the callback of the tie it replaces, so callbacks do not pile up on a
//! connection that a worker re-joins over again and again.
//!
//! A join made in process (through a [`BrokerRef`](crate::BrokerRef) of a local service, not
//! over a connection) has no connection to tie the worker to: it is queued like a
//! [`publish`](Broker::remote_publish)ed worker, until a `Removed` update removes it.
//!
//! # Trust
//!
//! `BrokerService` trusts its caller completely: its inherent methods and its [`Broker`]
//! implementation allow everything and never answer [`Forbidden`]. That is right for code in
//! the same program (`BrokerRef::new(service)` in process, tests, the demo). A peer should be
//! served a [`BrokerSession`] per login instead, which allows what the login's role may do;
//! the sessions of one service share its [ownership](crate::ownership) table, which lives here.
//!
//! # Bounded memory
//!
//! The queue tracks a limited number of worker ids ([`BrokerService::with_limit`]; see
//! [bounded memory](crate::queue#bounded-memory)), since any peer may
//! [`publish`](Broker::remote_publish). A join or update refused because every tracked id is a
//! queued worker returns [`Applied::Full`] and is logged as a warning.
//!
//! # Locking
//!
//! Every operation takes the one [`std::sync::Mutex`] for an O(log n) queue operation and a
//! hash-map lookup, never across an `.await` and never while calling into rpc-core (the
//! disconnect callback of a connection that is already closed runs at once, inside
//! [`Peer::on_disconnect`], and takes the lock itself).
//!
//! # Watching it
//!
//! Joins and leaves are logged with `tracing` (info level; ignored drops and updates at debug,
//! hand-outs at trace). In process, [`BrokerService::subscribe`] gives the same as a stream of
//! [`WorkerEvent`]s, for tests, metrics, or a program that embeds the broker.

use std::sync::{Arc, MutexGuard, Weak};
use std::time::Instant;

use rpc_core::{Peer, SturdyUrl};
use tokio::sync::broadcast;

#[cfg(doc)]
use crate::BrokerSession;
use crate::activity::Activity;
use crate::broker::{Broker, MAX_PAGE, WorkersPage};
use crate::forbidden::Forbidden;
use crate::ownership::Ownership;
use crate::queue::{Applied, Assignment, Change, WorkerId, WorkerQueue, WorkerState, WorkerUpdate};
pub(crate) use crate::service::state::unix_ms;
use crate::telemetry;

/// How many [`WorkerEvent`]s a slow subscriber may fall behind before it misses some.
const EVENT_BUFFER: usize = 1024;

/// The broker's service: implements [`Broker`] over a [`WorkerQueue`]. See the
/// [module docs](self).
///
/// Cheap to clone: clones share one queue. Serve it with
/// `Server::bind(addr, BrokerRef::new(service.clone()))` (or [`crate::run_service`]), and keep
/// a clone to look at the queue or [`subscribe`](BrokerService::subscribe) in process.
#[derive(Clone, Debug, Default)]
pub struct BrokerService {
    inner: Arc<Inner>,
}

/// Something that happened to a worker's tie to a connection, as seen by
/// [`BrokerService::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerEvent {
    /// A worker joined over a connection and is now tied to it.
    Joined {
        /// The worker.
        worker: WorkerId,
        /// The connection's peer address.
        peer: String,
    },
    /// A worker's connection dropped and the worker left the queue.
    Left {
        /// The worker.
        worker: WorkerId,
        /// Why the connection closed.
        reason: String,
    },
    /// A connection a worker had joined over dropped, but the worker had re-joined since (or
    /// had been removed by an update): the queue was left as it was.
    DisconnectIgnored {
        /// The worker.
        worker: WorkerId,
    },
}

impl BrokerService {
    /// A service with an empty queue that tracks at most
    /// [`DEFAULT_MAX_IDS`](crate::queue::DEFAULT_MAX_IDS) worker ids.
    pub fn new() -> Self {
        Self::default()
    }

    /// A service with an empty queue that tracks at most `max_workers` worker ids: queued
    /// workers plus tombstones of removed ones (see [`WorkerQueue::with_limit`]). At the limit,
    /// a new worker evicts the oldest tombstone, or is refused with [`Applied::Full`] when
    /// there is none.
    pub fn with_limit(max_workers: usize) -> Self {
        BrokerService {
            inner: Arc::new(Inner::with_limit(max_workers)),
        }
    }

    /// Sets how many worker ids one worker login may own (see
    /// [ownership](crate::ownership)); by default
    /// [`DEFAULT_MAX_WORKERS_PER_IDENTITY`](crate::ownership::DEFAULT_MAX_WORKERS_PER_IDENTITY).
    /// Meant for setting up: it changes every clone of this service, and ids owned already
    /// stay owned.
    pub fn with_max_workers_per_identity(self, max: u32) -> Self {
        lock(&self.inner.owners).set_max_per_identity(max);
        self
    }

    /// How many worker ids one worker login may own.
    pub fn max_workers_per_identity(&self) -> u32 {
        lock(&self.inner.owners).max_per_identity()
    }

    /// The worker login that owns `worker`, if any (see [ownership](crate::ownership)).
    pub fn owner(&self, worker: &WorkerId) -> Option<String> {
        lock(&self.inner.owners).owner(worker).map(str::to_owned)
    }

    /// The ownership table, for [`BrokerSession`]. Never held while `state` is locked.
    pub(crate) fn ownership(&self) -> MutexGuard<'_, Ownership> {
        lock(&self.inner.owners)
    }

    /// The most worker ids the queue tracks (see [`with_limit`](Self::with_limit)).
    pub fn limit(&self) -> usize {
        lock(&self.inner.state).queue.limit()
    }

    /// Hands out the most able worker (see [`WorkerQueue::next`]); `None` when no worker is
    /// queued.
    pub fn next_worker(&self) -> Option<Assignment> {
        let started = Instant::now();
        let (assignment, moved) = {
            let mut state = lock(&self.inner.state);
            let assignment = state.queue.next();
            let handed = assignment.as_ref().and_then(|a| state.queue.get(&a.worker));
            let seconds = state.seconds();
            let moved = handed.map(|worker| state.activity.handed_out(&worker, seconds));
            (assignment, moved)
        };
        match &assignment {
            Some(a) => {
                tracing::trace!(worker = %a.worker, addr = %SturdyUrl::redact(&a.addr), "handed out")
            }
            None => tracing::trace!("no worker to hand out"),
        }
        telemetry::next_worker(started.elapsed(), moved.is_some());
        if let Some(moved) = moved {
            telemetry::moved(moved);
        }
        assignment
    }

    /// Applies a scheduler update (see [`WorkerQueue::update`]). An applied
    /// [`Change::Removed`] also unties the worker from the connection it joined over.
    pub fn publish(&self, update: WorkerUpdate) -> Applied {
        let worker = update.worker.clone();
        let seq = update.seq;
        let added_addr = match &update.change {
            Change::Added { addr, .. } => Some(addr.clone()),
            _ => None,
        };
        let (applied, untied, moved) = {
            let mut state = lock(&self.inner.state);
            let applied = state.queue.update(update);
            let untied = match applied {
                Applied::Removed { .. } => state.ties.remove(&worker),
                _ => None,
            };
            (applied, untied, state.track(&worker, applied))
        };
        cancel(untied);
        telemetry::moved(moved);
        match applied {
            Applied::Added | Applied::Replaced => {
                let addr = added_addr.unwrap_or_default();
                tracing::info!(%worker, seq, addr = %SturdyUrl::redact(&addr), outcome = ?applied, "worker added by update");
            }
            Applied::Removed { was_queued } => {
                tracing::info!(%worker, seq, was_queued, "worker removed by update");
            }
            Applied::Full => full(&worker, seq, self.limit()),
            Applied::Invalid => invalid(&worker, seq),
            _ => tracing::debug!(%worker, seq, outcome = ?applied, "update"),
        }
        applied
    }

    /// Applies `update` and, when `peer` is given and the worker is queued afterwards, ties the
    /// worker to that connection: when it drops, the worker leaves the queue, unless it has
    /// joined again since. This is what [`Broker::remote_join`] does with the calling
    /// connection ([`Peer::current`]).
    ///
    /// Any earlier tie of the worker is undone, whatever `peer` is: the newest join decides.
    pub fn join(&self, update: WorkerUpdate, peer: Option<&Peer>) -> Applied {
        let worker = update.worker.clone();
        let seq = update.seq;
        let addr = match &update.change {
            Change::Added { addr, .. } => addr.clone(),
            _ => String::new(),
        };
        let (applied, token, replaced, moved) = {
            let mut state = lock(&self.inner.state);
            let applied = state.queue.update(update);
            let moved = state.track(&worker, applied);
            let (token, replaced) = match applied {
                Applied::Added | Applied::Replaced => {
                    let replaced = state.ties.remove(&worker);
                    let token = peer.map(|_| {
                        state.last_token += 1;
                        let token = state.last_token;
                        state.ties.insert(worker.clone(), Tie { token, hook: None });
                        token
                    });
                    (token, replaced)
                }
                Applied::Removed { .. } => (None, state.ties.remove(&worker)),
                _ => (None, None),
            };
            (applied, token, replaced, moved)
        };
        cancel(replaced);
        telemetry::moved(moved);
        let (Some(token), Some(peer)) = (token, peer) else {
            match applied {
                Applied::Added | Applied::Replaced => {
                    tracing::info!(%worker, seq, addr = %SturdyUrl::redact(&addr), "worker joined in process (not tied to a connection)");
                }
                Applied::Full => full(&worker, seq, self.limit()),
                Applied::Invalid => invalid(&worker, seq),
                _ => tracing::debug!(%worker, seq, outcome = ?applied, "join not applied"),
            }
            return applied;
        };
        tracing::info!(%worker, seq, addr = %SturdyUrl::redact(&addr), peer = %peer.addr(), outcome = ?applied, "worker joined");
        let _ = self.inner.events.send(WorkerEvent::Joined {
            worker: worker.clone(),
            peer: peer.addr().to_owned(),
        });
        // Outside the lock: on a connection that is already closed, the callback runs at once,
        // right here, and takes the lock itself.
        let inner = Arc::downgrade(&self.inner);
        let dropped = worker.clone();
        let hook = peer.on_disconnect(move |reason| disconnected(&inner, &dropped, token, reason));
        let mut state = lock(&self.inner.state);
        match state.ties.get_mut(&worker) {
            Some(tie) if tie.token == token => tie.hook = Some(hook),
            // Already dropped, re-joined or removed in the meantime: the callback is spent or
            // would do nothing.
            _ => {
                drop(state);
                hook.cancel();
            }
        }
        applied
    }

    /// Every queued worker with its state, most able first. O(n).
    pub fn workers(&self) -> Vec<WorkerState> {
        lock(&self.inner.state).queue.list()
    }

    /// At most `limit` (and never more than [`MAX_PAGE`]) queued workers from queue position
    /// `start` on, with the number and total capacity of all queued workers, read at one
    /// instant. O(start + limit).
    pub fn workers_page(&self, start: u64, limit: u32) -> WorkersPage {
        let size = limit.min(MAX_PAGE) as usize;
        let state = lock(&self.inner.state);
        let workers = match usize::try_from(start) {
            Ok(skip) => state.queue.page(skip, size),
            Err(_) => Vec::new(),
        };
        WorkersPage {
            start,
            workers,
            total: state.queue.len() as u64,
            total_capacity: state.queue.capacity_sum(),
        }
    }

    /// Runs `read` on the queue, the activity table and the rate clock's current second, at
    /// one instant (under the lock: keep it short). For the status page.
    pub(crate) fn read<R>(&self, read: impl FnOnce(&WorkerQueue, &Activity, u64) -> R) -> R {
        let state = lock(&self.inner.state);
        read(&state.queue, &state.activity, state.seconds())
    }

    /// The number of queued workers.
    pub fn len(&self) -> usize {
        lock(&self.inner.state).queue.len()
    }

    /// Whether no worker is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The [`WorkerEvent`]s from now on: joins, and drops of the connections workers joined
    /// over. A receiver that falls more than 1024 events behind misses the oldest ones
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn subscribe(&self) -> broadcast::Receiver<WorkerEvent> {
        self.inner.events.subscribe()
    }
}

/// Logs a worker refused because the queue tracks as many ids as it may, all queued.
fn full(worker: &WorkerId, seq: u64, limit: usize) {
    tracing::warn!(
        %worker,
        seq,
        limit,
        "worker refused: the broker already tracks as many workers as it may (--max-workers)"
    );
}

fn invalid(worker: &WorkerId, seq: u64) {
    let shown: String = worker.0.chars().take(40).collect();
    tracing::warn!(
        worker = %shown,
        seq,
        "update refused: the worker id or address is too long (at most {} and {} bytes)",
        crate::queue::MAX_ID_LEN,
        crate::queue::MAX_ADDR_LEN
    );
}

/// Cancels the disconnect callback of a tie that was undone. Never called with the lock held.
fn cancel(tie: Option<Tie>) {
    if let Some(hook) = tie.and_then(|tie| tie.hook) {
        hook.cancel();
    }
}

/// The disconnect callback of the join that got `token`: removes `worker` if that join is
/// still its newest.
fn disconnected(inner: &Weak<Inner>, worker: &WorkerId, token: u64, reason: &str) {
    // The service is gone (the broker shut down): nothing to remove from.
    let Some(inner) = inner.upgrade() else {
        return;
    };
    let was_queued = {
        let mut state = lock(&inner.state);
        match state.ties.get(worker) {
            Some(tie) if tie.token == token => {
                state.ties.remove(worker);
                let was_queued = state.queue.remove(worker);
                telemetry::moved(state.activity.left(worker));
                Some(was_queued)
            }
            _ => None,
        }
    };
    let event = match was_queued {
        Some(was_queued) => {
            tracing::info!(%worker, reason, was_queued, "worker left: its connection dropped");
            WorkerEvent::Left {
                worker: worker.clone(),
                reason: reason.to_owned(),
            }
        }
        None => {
            tracing::debug!(
                %worker,
                reason,
                "a connection the worker joined over dropped, but it re-joined or was removed since"
            );
            WorkerEvent::DisconnectIgnored {
                worker: worker.clone(),
            }
        }
    };
    let _ = inner.events.send(event);
}

/// The fully trusted implementation: every call is allowed, never [`Forbidden`]. It is what
/// code in the same program calls through `BrokerRef::new(service)`; serve a
/// [`BrokerSession`] per login to anyone else.
impl Broker for BrokerService {
    async fn remote_next_worker(&self) -> Result<Option<Assignment>, Forbidden> {
        Ok(self.next_worker())
    }

    async fn remote_publish(&self, update: WorkerUpdate) -> Result<Applied, Forbidden> {
        Ok(self.publish(update))
    }

    async fn remote_join(&self, update: WorkerUpdate) -> Result<Applied, Forbidden> {
        Ok(self.join(update, Peer::current().as_ref()))
    }

    async fn remote_workers(&self, start: u64, limit: u32) -> Result<WorkersPage, Forbidden> {
        Ok(self.workers_page(start, limit))
    }
}

#[path = "service_state.rs"]
mod state;
use state::{Inner, Tie, lock};

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
