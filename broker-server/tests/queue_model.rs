//! Model test for the broker's worker queue: random operations are applied both to
//! `WorkerQueue` and to an obviously correct model (a `Vec` scanned linearly), and every
//! result must agree. The queue's limit on tracked ids is [`LIMIT`], below the number of
//! names, so eviction of tombstones and `Applied::Full` are both exercised.

use std::cmp::Reverse;

use broker_server::queue::{
    Applied, Assignment, Change, WorkerId, WorkerQueue, WorkerState, WorkerUpdate,
};
use proptest::prelude::*;

/// A few worker names, so updates often hit the same worker.
const NAMES: [&str; 4] = ["w0", "w1", "w2", "w3"];

/// The most worker ids the queue (and the model) track.
const LIMIT: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Update(WorkerUpdate),
    Next,
    Remove(WorkerId),
}

fn worker_id() -> impl Strategy<Value = WorkerId> {
    (0..NAMES.len()).prop_map(|i| WorkerId::from(NAMES[i]))
}

/// Mostly small numbers, so ties and saturation are common; sometimes the extremes.
fn amount() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0..6u32, 1 => Just(u32::MAX)]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..3u8, amount(), amount()).prop_map(|(port, capacity, load)| Change::Added {
            addr: format!("127.0.0.1:{port}"),
            capacity,
            load,
        }),
        3 => (amount(), amount()).prop_map(|(capacity, load)| Change::Load { capacity, load }),
        1 => Just(Change::Removed),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (worker_id(), 0..12u64, change())
            .prop_map(|(worker, seq, change)| Op::Update(WorkerUpdate { worker, seq, change })),
        4 => Just(Op::Next),
        1 => worker_id().prop_map(Op::Remove),
    ]
}

#[derive(Debug, Clone)]
struct ModelLive {
    addr: String,
    capacity: u32,
    load: u32,
    handed_out: u64,
    /// 0 = never handed out.
    last_handed: u64,
}

impl ModelLive {
    fn spare(&self) -> i64 {
        i64::from(self.capacity) - i64::from(self.load) - self.handed_out as i64
    }
}

#[derive(Debug, Clone)]
struct ModelEntry {
    id: WorkerId,
    last_seq: u64,
    /// `None` = removed (tombstone).
    live: Option<ModelLive>,
    /// When it was last removed (a tombstone's age); a larger number is more recent.
    removed_at: u64,
}

/// The queue as the spec states it, with linear scans everywhere.
#[derive(Debug)]
struct Model {
    entries: Vec<ModelEntry>,
    clock: u64,
    /// Counts removals, to order tombstones by age.
    removals: u64,
    limit: usize,
}

impl Model {
    fn new(limit: usize) -> Self {
        Model {
            entries: Vec::new(),
            clock: 0,
            removals: 0,
            limit,
        }
    }

    /// Marks entry `i` (no longer queued) as removed now.
    fn bury(&mut self, i: usize) {
        self.removals += 1;
        self.entries[i].removed_at = self.removals;
    }

    fn update(&mut self, update: WorkerUpdate) -> Applied {
        let position = self.entries.iter().position(|e| e.id == update.worker);
        if let Some(i) = position
            && update.seq <= self.entries[i].last_seq
        {
            return Applied::Stale;
        }
        match update.change {
            Change::Added {
                addr,
                capacity,
                load,
            } => {
                let mut live = ModelLive {
                    addr,
                    capacity,
                    load,
                    handed_out: 0,
                    last_handed: 0,
                };
                match position {
                    Some(i) => {
                        let entry = &mut self.entries[i];
                        entry.last_seq = update.seq;
                        let outcome = match &entry.live {
                            Some(old) => {
                                live.last_handed = old.last_handed;
                                Applied::Replaced
                            }
                            None => Applied::Added,
                        };
                        entry.live = Some(live);
                        outcome
                    }
                    None => {
                        if self.entries.len() >= self.limit {
                            // Forget the tombstone removed longest ago, or refuse.
                            let oldest = self
                                .entries
                                .iter()
                                .enumerate()
                                .filter(|(_, e)| e.live.is_none())
                                .min_by_key(|(_, e)| e.removed_at)
                                .map(|(i, _)| i);
                            match oldest {
                                Some(i) => {
                                    self.entries.remove(i);
                                }
                                None => return Applied::Full,
                            }
                        }
                        self.entries.push(ModelEntry {
                            id: update.worker,
                            last_seq: update.seq,
                            live: Some(live),
                            removed_at: 0,
                        });
                        Applied::Added
                    }
                }
            }
            Change::Load { capacity, load } => {
                match position.and_then(|i| self.entries[i].live.is_some().then_some(i)) {
                    Some(i) => {
                        let entry = &mut self.entries[i];
                        entry.last_seq = update.seq;
                        let live = entry.live.as_mut().unwrap();
                        live.capacity = capacity;
                        live.load = load;
                        live.handed_out = 0;
                        Applied::LoadChanged
                    }
                    None => Applied::UnknownWorker,
                }
            }
            Change::Removed => match position {
                Some(i) => {
                    let entry = &mut self.entries[i];
                    entry.last_seq = update.seq;
                    let was_queued = entry.live.take().is_some();
                    self.bury(i);
                    Applied::Removed { was_queued }
                }
                // Never seen (or forgotten): nothing is recorded.
                None => Applied::UnknownWorker,
            },
            other => panic!("the model does not know {other:?}"),
        }
    }

    /// Index of the most able worker: most spare, then least recently handed out, then
    /// smallest id.
    fn head(&self) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.live.as_ref().map(|live| (i, e, live)))
            .max_by_key(|(_, e, live)| (live.spare(), Reverse(live.last_handed), Reverse(&e.id)))
            .map(|(i, _, _)| i)
    }

    fn next(&mut self) -> Option<Assignment> {
        let i = self.head()?;
        self.clock += 1;
        let entry = &mut self.entries[i];
        let live = entry.live.as_mut().unwrap();
        live.handed_out += 1;
        live.last_handed = self.clock;
        Some(Assignment {
            worker: entry.id.clone(),
            addr: live.addr.clone(),
        })
    }

    fn remove(&mut self, worker: &WorkerId) -> bool {
        let Some(i) = self.entries.iter().position(|e| &e.id == worker) else {
            return false;
        };
        if self.entries[i].live.take().is_none() {
            return false;
        }
        self.bury(i);
        true
    }

    fn list_sorted_by_id(&self) -> Vec<WorkerState> {
        let mut list: Vec<WorkerState> = self
            .entries
            .iter()
            .filter_map(|e| {
                e.live.as_ref().map(|live| WorkerState {
                    id: e.id.clone(),
                    addr: live.addr.clone(),
                    capacity: live.capacity,
                    load: live.load,
                    handed_out: live.handed_out,
                    spare: live.spare(),
                })
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn queue_agrees_with_linear_model(ops in prop::collection::vec(op(), 0..80)) {
        let mut queue = WorkerQueue::with_limit(LIMIT);
        let mut model = Model::new(LIMIT);
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Update(update) => {
                    let got = queue.update(update.clone());
                    let want = model.update(update);
                    prop_assert_eq!(got, want, "update at step {}", step);
                }
                Op::Next => {
                    prop_assert_eq!(queue.next(), model.next(), "next at step {}", step);
                }
                Op::Remove(worker) => {
                    prop_assert_eq!(
                        queue.remove(&worker),
                        model.remove(&worker),
                        "remove at step {}",
                        step
                    );
                }
            }

            let list = queue.list();
            prop_assert_eq!(list.len(), queue.len());
            prop_assert_eq!(queue.is_empty(), list.is_empty());
            prop_assert_eq!(queue.tracked(), model.entries.len());
            prop_assert!(queue.tracked() <= LIMIT);
            // Queue order: the head is the model's choice and spare never increases.
            let model_head = model.head().map(|i| model.entries[i].id.clone());
            prop_assert_eq!(list.first().map(|w| w.id.clone()), model_head);
            prop_assert!(list.windows(2).all(|pair| pair[0].spare >= pair[1].spare));
            // The kept sum of capacities and the pages agree with the list.
            let capacities: u64 = list.iter().map(|w| u64::from(w.capacity)).sum();
            prop_assert_eq!(queue.capacity_sum(), capacities);
            let paged: Vec<_> = (0..list.len().div_ceil(3))
                .flat_map(|page| queue.page(page * 3, 3))
                .collect();
            prop_assert_eq!(&paged, &list);
            // As a set, the same workers in the same state.
            let mut sorted = list;
            sorted.sort_by(|a, b| a.id.cmp(&b.id));
            prop_assert_eq!(sorted, model.list_sorted_by_id());
        }
    }
}
