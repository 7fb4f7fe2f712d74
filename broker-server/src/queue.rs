//! The broker's worker queue: which worker a front end should use next.
//!
//! The broker keeps a queue of the *most able* workers and hands out the queue head
//! whenever a front end asks for a worker. This module is that queue, with no I/O: the
//! broker's service feeds it scheduler updates and connection drops, and asks it for
//! [`WorkerQueue::next`].
//!
//! # Most able
//!
//! A worker is more able the more *spare capacity* it has:
//!
//! ```text
//! spare = capacity - load - handed_out        (signed: may go negative)
//! ```
//!
//! `capacity` and `load` come from the scheduler. `handed_out` counts how many times the
//! broker handed this worker out since the scheduler last reported on it. Without it, a
//! burst of requests arriving between two scheduler reports would all go to the same
//! worker, because its reported load would not change until the next report; with it,
//! each hand-out counts against the worker's spare capacity, so back-to-back requests
//! spread over the workers. Once the scheduler reports again ([`Change::Added`] or
//! [`Change::Load`]), the reported load already includes the work handed out, so the
//! count starts again from zero.
//!
//! Spare capacity can be negative: when every worker is saturated, the least overloaded
//! one is still handed out. [`WorkerQueue::next`] returns `None` only when there are no
//! workers at all; whether to queue or refuse work is the front end's decision.
//!
//! Ties on spare capacity go to the worker handed out *least recently* (a worker never
//! handed out counts as the least recent of all), so equal workers take turns round
//! robin; the last tie-breaker is the worker id, so the order is always total and
//! deterministic.
//!
//! # Sequence numbers and tombstones
//!
//! Scheduler updates may arrive out of order (over several connections, or after a
//! reconnect that replays history). Every [`WorkerUpdate`] carries a sequence number, and
//! the queue remembers, per worker, the last sequence number it applied: an update whose
//! `seq` is not greater than that is [`Applied::Stale`] and changes nothing.
//!
//! The memory outlives the worker. When a worker is removed, its last sequence number is
//! kept as a *tombstone*, so that an older `Added` that arrives late cannot resurrect a
//! worker the scheduler has already removed. Only an update with a higher `seq` brings it
//! back. Tombstones are small — an id and a couple of numbers — and are kept until the
//! [limit](#bounded-memory) on tracked ids needs the room.
//!
//! A worker whose broker connection drops is taken out with [`WorkerQueue::remove`], which
//! has no sequence number of its own: the worker's last applied `seq` becomes its tombstone.
//!
//! A [`Change::Removed`] for a worker the queue does not know at all (never seen, or its
//! tombstone was evicted) records nothing and is [`Applied::UnknownWorker`], like a
//! [`Change::Load`] for an unknown worker. The trade-off: a `Removed` that overtakes the
//! worker's very first `Added` is lost, and the late `Added` then queues the worker. Bounded
//! memory wins: otherwise anyone able to publish could grow the queue with a tombstone per
//! made-up id. A scheduler that needs the removal to stick re-sends it after the `Added`.
//!
//! # Bounded memory
//!
//! The queue tracks at most [`limit`](WorkerQueue::limit) worker ids, queued workers and
//! tombstones together ([`WorkerQueue::with_limit`]; [`WorkerQueue::new`] allows
//! [`DEFAULT_MAX_IDS`]). Only an `Added` for an id the queue does not track adds one. When
//! the queue is at its limit:
//!
//! - if there are tombstones, the *oldest* one (by the time its worker was last removed, by
//!   update or by [`remove`](WorkerQueue::remove)) is evicted to make room: that worker then
//!   counts as never seen, so a late `Added` older than its removal would queue it again;
//! - if every tracked id is a queued worker, the `Added` is refused with [`Applied::Full`]
//!   and nothing changes (nor is its `seq` recorded).
//!
//! Ids and addresses are bounded too ([`MAX_ID_LEN`], [`MAX_ADDR_LEN`]): an update with a
//! longer one is [`Applied::Invalid`], so the limit on ids also bounds their bytes.
//!
//! # Cost
//!
//! [`update`](WorkerQueue::update), [`next`](WorkerQueue::next) and
//! [`remove`](WorkerQueue::remove) are O(log n) in the number of tracked ids: workers sit
//! in a [`BTreeSet`] ordered by ability, next to a [`HashMap`] by id, and tombstones in a
//! [`BTreeMap`] by removal order. Only [`list`](WorkerQueue::list) walks the whole queue.
//!
//! # Example
//!
//! ```
//! use broker_server::queue::{Applied, Change, WorkerId, WorkerQueue, WorkerUpdate};
//!
//! let mut queue = WorkerQueue::new();
//! for (name, capacity) in [("a", 4), ("b", 2)] {
//!     let update = WorkerUpdate {
//!         worker: WorkerId::from(name),
//!         seq: 1,
//!         change: Change::Added { addr: format!("{name}.local:8992"), capacity, load: 0 },
//!     };
//!     assert_eq!(queue.update(update), Applied::Added);
//! }
//! // "a" has 4 spare, "b" 2: "a" goes out twice (4 → 3 → 2), then they alternate.
//! let order: Vec<String> = (0..4).map(|_| queue.next().unwrap().worker.0).collect();
//! assert_eq!(order, ["a", "a", "b", "a"]);
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

/// How many worker ids (queued workers plus tombstones) [`WorkerQueue::new`] tracks at most.
/// See [bounded memory](self#bounded-memory).
pub const DEFAULT_MAX_IDS: usize = 100_000;

/// The longest worker id (in bytes) the queue accepts; longer ones are [`Applied::Invalid`].
/// With [`DEFAULT_MAX_IDS`], it bounds what the ids of the queue can take.
pub const MAX_ID_LEN: usize = 256;

/// The longest worker address (in bytes) the queue accepts; longer ones are
/// [`Applied::Invalid`].
pub const MAX_ADDR_LEN: usize = 256;

/// The name of a worker, as the scheduler knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub String);

impl WorkerId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(id: &str) -> Self {
        WorkerId(id.to_owned())
    }
}

impl From<String> for WorkerId {
    fn from(id: String) -> Self {
        WorkerId(id)
    }
}

/// One update from the scheduler about one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerUpdate {
    /// The worker the update is about.
    pub worker: WorkerId,
    /// The update's sequence number. Per worker, only an update with a higher `seq` than
    /// every update applied before is applied; the others are [`Applied::Stale`].
    pub seq: u64,
    /// What changed.
    pub change: Change,
}

/// What changed about a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Change {
    /// The worker joined (or re-joined) at `addr`. For a worker already in the queue, this
    /// replaces its address, capacity and load.
    Added {
        /// Where front ends reach the worker, e.g. `"10.0.0.7:8992"`.
        addr: String,
        /// How much work the worker can take at once.
        capacity: u32,
        /// How much work it has now.
        load: u32,
    },
    /// The worker's capacity or load changed. The reported load includes any work the
    /// broker handed out to it before this report.
    Load {
        /// How much work the worker can take at once.
        capacity: u32,
        /// How much work it has now.
        load: u32,
    },
    /// The scheduler removed the worker.
    Removed,
}

/// What [`WorkerQueue::update`] did with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Applied {
    /// A worker not in the queue (never seen, or removed before) joined it.
    Added,
    /// A worker already in the queue got a new address, capacity and load.
    Replaced,
    /// A queued worker's capacity and load were updated.
    LoadChanged,
    /// The worker was removed. `was_queued` is false when it was already removed (a
    /// tombstone); its tombstone is advanced all the same, so an older `Added` arriving later
    /// stays ignored.
    Removed {
        /// Whether the worker was in the queue until this update.
        was_queued: bool,
    },
    /// The update's `seq` was not greater than the last one applied for this worker
    /// (including a removed worker's tombstone); nothing changed.
    Stale,
    /// A [`Change::Load`] for a worker not in the queue, or a [`Change::Removed`] for a worker
    /// the queue does not track at all (never seen, or its tombstone evicted); nothing changed
    /// and its `seq` was not recorded.
    UnknownWorker,
    /// A [`Change::Added`] for a new id, refused because the queue tracks as many ids as its
    /// [limit](WorkerQueue::limit) allows and all of them are queued workers (no tombstone to
    /// evict); nothing changed and its `seq` was not recorded.
    Full,
    /// The worker id is longer than [`MAX_ID_LEN`] or the address longer than
    /// [`MAX_ADDR_LEN`]; nothing changed and its `seq` was not recorded.
    Invalid,
}

/// A worker handed out by [`WorkerQueue::next`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The worker's id.
    pub worker: WorkerId,
    /// Where to reach it.
    pub addr: String,
}

/// A snapshot of one queued worker, as returned by [`WorkerQueue::list`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerState {
    /// The worker's id.
    pub id: WorkerId,
    /// Where to reach it.
    pub addr: String,
    /// Its capacity, as last reported.
    pub capacity: u32,
    /// Its load, as last reported.
    pub load: u32,
    /// Times it was handed out since the last report on it.
    pub handed_out: u64,
    /// `capacity - load - handed_out`; negative when overloaded.
    pub spare: i64,
}

/// A queued worker's state.
#[derive(Debug, Clone)]
struct Live {
    addr: String,
    capacity: u32,
    load: u32,
    handed_out: u64,
    /// Stamp of the last hand-out; 0 = never handed out (least recent of all).
    last_handed: u64,
}

impl Live {
    fn spare(&self) -> i64 {
        let handed = i64::try_from(self.handed_out).unwrap_or(i64::MAX);
        (i64::from(self.capacity) - i64::from(self.load)).saturating_sub(handed)
    }

    fn snapshot(&self, id: &WorkerId) -> WorkerState {
        WorkerState {
            id: id.clone(),
            addr: self.addr.clone(),
            capacity: self.capacity,
            load: self.load,
            handed_out: self.handed_out,
            spare: self.spare(),
        }
    }
}

/// Everything the queue knows about one worker id.
#[derive(Debug, Clone)]
struct Entry {
    /// The last `seq` applied for this worker.
    last_seq: u64,
    /// `Some` while queued; `None` is a tombstone.
    live: Option<Live>,
    /// A tombstone's removal stamp, its key in [`WorkerQueue::tombstones`]; `None` exactly
    /// while queued.
    removed: Option<u64>,
}

/// The position of a queued worker. Ascending order = queue order: most spare first,
/// then least recently handed out, then by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    spare: Reverse<i64>,
    last_handed: u64,
    id: WorkerId,
}

impl QueueKey {
    fn new(id: &WorkerId, live: &Live) -> Self {
        QueueKey {
            spare: Reverse(live.spare()),
            last_handed: live.last_handed,
            id: id.clone(),
        }
    }
}

/// The queue of workers, most able first. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct WorkerQueue {
    /// Queued workers in queue order. Holds exactly the entries whose `live` is `Some`.
    order: BTreeSet<QueueKey>,
    /// Every tracked worker, queued or tombstoned. At most `max_ids` of them.
    workers: HashMap<WorkerId, Entry>,
    /// The tombstones by removal stamp, oldest first: exactly the entries whose `live` is
    /// `None`, each under its `removed` stamp.
    tombstones: BTreeMap<u64, WorkerId>,
    /// The last hand-out stamp given out; stamps start at 1.
    clock: u64,
    /// The last removal stamp given out; stamps start at 1.
    removals: u64,
    /// The most ids `workers` may hold.
    max_ids: usize,
    /// The sum of the capacities of the queued workers.
    capacity_sum: u64,
}

impl Default for WorkerQueue {
    /// An empty queue tracking at most [`DEFAULT_MAX_IDS`] ids.
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_IDS)
    }
}

impl WorkerQueue {
    /// An empty queue tracking at most [`DEFAULT_MAX_IDS`] worker ids.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue tracking at most `max_ids` worker ids: queued workers and tombstones
    /// together (see [bounded memory](self#bounded-memory)). With 0, every `Added` is
    /// [`Applied::Full`].
    pub fn with_limit(max_ids: usize) -> Self {
        WorkerQueue {
            order: BTreeSet::new(),
            workers: HashMap::new(),
            tombstones: BTreeMap::new(),
            clock: 0,
            removals: 0,
            max_ids,
            capacity_sum: 0,
        }
    }

    /// The most worker ids (queued workers plus tombstones) the queue tracks.
    pub fn limit(&self) -> usize {
        self.max_ids
    }

    /// The number of worker ids the queue tracks now: queued workers plus tombstones.
    pub fn tracked(&self) -> usize {
        self.workers.len()
    }

    /// Applies one scheduler update, unless it is stale. O(log n).
    ///
    /// Every applied `Added` or `Load` resets the worker's handed-out count to 0. See
    /// [`Applied`] for the possible outcomes.
    pub fn update(&mut self, update: WorkerUpdate) -> Applied {
        let WorkerUpdate {
            worker,
            seq,
            change,
        } = update;
        let long_addr = matches!(&change, Change::Added { addr, .. } if addr.len() > MAX_ADDR_LEN);
        if worker.0.len() > MAX_ID_LEN || long_addr {
            return Applied::Invalid;
        }
        let entry = self.workers.get_mut(&worker);
        if entry.as_ref().is_some_and(|entry| seq <= entry.last_seq) {
            return Applied::Stale;
        }
        match (change, entry) {
            (
                Change::Added {
                    addr,
                    capacity,
                    load,
                },
                entry,
            ) => {
                let fresh = Live {
                    addr,
                    capacity,
                    load,
                    handed_out: 0,
                    last_handed: 0,
                };
                match entry {
                    Some(Entry {
                        last_seq,
                        live: Some(live),
                        ..
                    }) => {
                        *last_seq = seq;
                        // Keep its hand-out history: a re-announced worker does not jump
                        // the round robin.
                        let last_handed = live.last_handed;
                        self.capacity_sum -= u64::from(live.capacity);
                        self.capacity_sum += u64::from(fresh.capacity);
                        Self::reposition(&mut self.order, &worker, live, |live| {
                            *live = Live {
                                last_handed,
                                ..fresh
                            };
                        });
                        Applied::Replaced
                    }
                    Some(entry) => {
                        entry.last_seq = seq;
                        if let Some(stamp) = entry.removed.take() {
                            self.tombstones.remove(&stamp);
                        }
                        self.order.insert(QueueKey::new(&worker, &fresh));
                        self.capacity_sum += u64::from(fresh.capacity);
                        entry.live = Some(fresh);
                        Applied::Added
                    }
                    None => {
                        if self.workers.len() >= self.max_ids {
                            // Make room by forgetting the oldest tombstone, if there is one.
                            let Some((_, evicted)) = self.tombstones.pop_first() else {
                                return Applied::Full;
                            };
                            self.workers.remove(&evicted);
                        }
                        self.order.insert(QueueKey::new(&worker, &fresh));
                        self.capacity_sum += u64::from(fresh.capacity);
                        self.workers.insert(
                            worker,
                            Entry {
                                last_seq: seq,
                                live: Some(fresh),
                                removed: None,
                            },
                        );
                        Applied::Added
                    }
                }
            }
            (
                Change::Load { capacity, load },
                Some(Entry {
                    last_seq,
                    live: Some(live),
                    ..
                }),
            ) => {
                *last_seq = seq;
                self.capacity_sum -= u64::from(live.capacity);
                self.capacity_sum += u64::from(capacity);
                Self::reposition(&mut self.order, &worker, live, |live| {
                    live.capacity = capacity;
                    live.load = load;
                    live.handed_out = 0;
                });
                Applied::LoadChanged
            }
            (Change::Load { .. }, _) => Applied::UnknownWorker,
            (Change::Removed, Some(entry)) => {
                entry.last_seq = seq;
                let was_queued = match entry.live.take() {
                    Some(live) => {
                        self.order.remove(&QueueKey::new(&worker, &live));
                        self.capacity_sum -= u64::from(live.capacity);
                        true
                    }
                    None => false,
                };
                Self::entomb(&mut self.tombstones, &mut self.removals, worker, entry);
                Applied::Removed { was_queued }
            }
            // Recording a tombstone for an id never seen would let any publisher grow the
            // queue without bound; see the module docs for the trade-off.
            (Change::Removed, None) => Applied::UnknownWorker,
        }
    }

    /// Hands out the most able worker, or `None` when the queue is empty. O(log n).
    ///
    /// The worker's handed-out count goes up by one and it becomes the most recently
    /// handed out, so the next call may well pick another worker.
    #[expect(
        clippy::should_implement_trait,
        reason = "not an iterator: it never runs out while a worker is queued"
    )]
    pub fn next(&mut self) -> Option<Assignment> {
        let head = self.order.pop_first()?;
        let live = self
            .workers
            .get_mut(&head.id)
            .and_then(|entry| entry.live.as_mut())
            .expect("every key in the order set has a queued entry");
        self.clock += 1;
        live.handed_out = live.handed_out.saturating_add(1);
        live.last_handed = self.clock;
        let assignment = Assignment {
            worker: head.id.clone(),
            addr: live.addr.clone(),
        };
        self.order.insert(QueueKey::new(&head.id, live));
        Some(assignment)
    }

    /// Takes a worker out of the queue because its connection to the broker dropped.
    /// O(log n).
    ///
    /// The worker's last applied `seq` becomes its tombstone: it is handed out again only
    /// after an `Added` with a higher `seq`. Returns whether it was queued.
    pub fn remove(&mut self, worker: &WorkerId) -> bool {
        let Some(entry) = self.workers.get_mut(worker) else {
            return false;
        };
        let Some(live) = entry.live.take() else {
            return false;
        };
        self.order.remove(&QueueKey::new(worker, &live));
        self.capacity_sum -= u64::from(live.capacity);
        Self::entomb(
            &mut self.tombstones,
            &mut self.removals,
            worker.clone(),
            entry,
        );
        true
    }

    /// A snapshot of every queued worker, in queue order (the head first). O(n).
    pub fn list(&self) -> Vec<WorkerState> {
        self.page(0, usize::MAX)
    }

    /// A snapshot of at most `limit` queued workers, in queue order, from the `start`-th
    /// (0 is the head). O(start + limit): the order is walked from the head.
    pub fn page(&self, start: usize, limit: usize) -> Vec<WorkerState> {
        self.order
            .iter()
            .skip(start)
            .take(limit)
            .map(|key| {
                self.get(&key.id)
                    .expect("every key in the order set has a queued entry")
            })
            .collect()
    }

    /// A snapshot of one queued worker; `None` when it is not queued. O(1).
    pub fn get(&self, worker: &WorkerId) -> Option<WorkerState> {
        let live = self.workers.get(worker)?.live.as_ref()?;
        Some(live.snapshot(worker))
    }

    /// The sum of the capacities of the queued workers, as last reported. O(1): kept up to
    /// date by every change.
    pub fn capacity_sum(&self) -> u64 {
        self.capacity_sum
    }

    /// The number of queued workers (tombstones not counted).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no worker is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Makes `entry` (already taken out of the order) the newest tombstone, moving it if it
    /// already was one.
    fn entomb(
        tombstones: &mut BTreeMap<u64, WorkerId>,
        removals: &mut u64,
        id: WorkerId,
        entry: &mut Entry,
    ) {
        debug_assert!(entry.live.is_none());
        if let Some(stamp) = entry.removed.take() {
            tombstones.remove(&stamp);
        }
        *removals += 1;
        entry.removed = Some(*removals);
        tombstones.insert(*removals, id);
    }

    /// Changes a queued worker's state and moves it to its new place in the order.
    fn reposition(
        order: &mut BTreeSet<QueueKey>,
        id: &WorkerId,
        live: &mut Live,
        change: impl FnOnce(&mut Live),
    ) {
        order.remove(&QueueKey::new(id, live));
        change(live);
        order.insert(QueueKey::new(id, live));
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
