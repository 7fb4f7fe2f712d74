//! The state behind a [`BrokerService`](super::BrokerService): the queue, the ties of
//! workers to connections, the activity table, and the ownership table, each behind a lock,
//! with what keeps the queue and the activity table in step.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use rpc_core::DisconnectHook;
use tokio::sync::broadcast;

#[cfg(doc)]
use crate::BrokerSession;
use crate::activity::{Activity, Transition, WorkerLoad};
use crate::ownership::Ownership;
use crate::queue::{Applied, WorkerId, WorkerQueue};
use crate::telemetry;

use super::{EVENT_BUFFER, WorkerEvent};

/// What every clone of a [`BrokerService`](super::BrokerService) shares.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) state: Mutex<State>,
    /// Which worker login owns which worker id; used by [`BrokerSession`]s only. Never locked
    /// together with `state`.
    pub(super) owners: Mutex<Ownership>,
    pub(super) events: broadcast::Sender<WorkerEvent>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner::with_limit(crate::queue::DEFAULT_MAX_IDS)
    }
}

impl Inner {
    pub(super) fn with_limit(max_workers: usize) -> Self {
        Inner {
            state: Mutex::new(State {
                queue: WorkerQueue::with_limit(max_workers),
                ties: HashMap::new(),
                last_token: 0,
                activity: Activity::default(),
                started: Instant::now(),
            }),
            owners: Mutex::new(Ownership::default()),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

/// The queue and what goes with it, under one lock.
#[derive(Debug)]
pub(super) struct State {
    pub(super) queue: WorkerQueue,
    /// The joined workers that are queued, with the token of their newest join.
    pub(super) ties: HashMap<WorkerId, Tie>,
    /// The last join token given out.
    pub(super) last_token: u64,
    /// Hand-out totals, update times and states of the queued workers, and the hand-out rate.
    pub(super) activity: Activity,
    /// The start of the hand-out rate's clock.
    pub(super) started: Instant,
}

impl State {
    /// Records in `activity` what an update that the queue answered `applied` did to
    /// `worker`.
    pub(super) fn track(&mut self, worker: &WorkerId, applied: Applied) -> Transition {
        match applied {
            Applied::Added | Applied::Replaced | Applied::LoadChanged => {
                match self.queue.get(worker) {
                    Some(now) => self.activity.updated(&now, unix_ms()),
                    None => self.activity.left(worker),
                }
            }
            Applied::Removed { .. } => self.activity.left(worker),
            _ => Transition {
                from: None,
                to: None,
            },
        }
    }

    /// Seconds on the hand-out rate's clock.
    pub(super) fn seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

impl Drop for Inner {
    /// Takes the workers still queued off the process's worker gauges.
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (load, count) in WorkerLoad::ALL.into_iter().zip(state.activity.counts()) {
            telemetry::forget(load, count);
        }
    }
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A worker's tie to the connection it joined over.
#[derive(Debug)]
pub(super) struct Tie {
    pub(super) token: u64,
    /// The disconnect callback, to cancel when the tie is replaced or undone. `None` for the
    /// moment between the join and the callback's registration.
    pub(super) hook: Option<DisconnectHook>,
}

/// Locks the state (or the ownership table). A panic while it was held (an invariant of the
/// queue broken) is not a reason to stop serving the other calls, so poisoning is ignored.
pub(super) fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
