//! Unit tests of [`queue`](super), kept out of its file to keep that one short.

use super::*;

fn id(name: &str) -> WorkerId {
    WorkerId::from(name)
}

#[test]
fn overlong_ids_and_addresses_are_refused() {
    let mut q = WorkerQueue::new();
    let long = "w".repeat(MAX_ID_LEN + 1);
    assert_eq!(q.update(added(&long, 1, 1, 0)), Applied::Invalid);
    let removal = WorkerUpdate {
        worker: id(&long),
        seq: 2,
        change: Change::Removed,
    };
    assert_eq!(q.update(removal), Applied::Invalid);
    let mut far = added("a", 1, 1, 0);
    if let Change::Added { addr, .. } = &mut far.change {
        *addr = "x".repeat(MAX_ADDR_LEN + 1);
    }
    assert_eq!(q.update(far), Applied::Invalid);
    assert_eq!(q.tracked(), 0);
    // At the limits, accepted.
    let mut edge = added(&"w".repeat(MAX_ID_LEN), 1, 1, 0);
    if let Change::Added { addr, .. } = &mut edge.change {
        *addr = "x".repeat(MAX_ADDR_LEN);
    }
    assert_eq!(q.update(edge), Applied::Added);
}

fn added(name: &str, seq: u64, capacity: u32, load: u32) -> WorkerUpdate {
    WorkerUpdate {
        worker: id(name),
        seq,
        change: Change::Added {
            addr: format!("{name}:1"),
            capacity,
            load,
        },
    }
}

fn load(name: &str, seq: u64, capacity: u32, load: u32) -> WorkerUpdate {
    WorkerUpdate {
        worker: id(name),
        seq,
        change: Change::Load { capacity, load },
    }
}

fn removed(name: &str, seq: u64) -> WorkerUpdate {
    WorkerUpdate {
        worker: id(name),
        seq,
        change: Change::Removed,
    }
}

fn next_id(queue: &mut WorkerQueue) -> String {
    queue.next().expect("a worker").worker.0
}

/// The order set holds exactly the queued workers, each under its current key; the
/// tombstone map exactly the others, each under its stamp; no more ids than the limit.
fn check(queue: &WorkerQueue) {
    let queued: BTreeSet<QueueKey> = queue
        .workers
        .iter()
        .filter_map(|(id, entry)| entry.live.as_ref().map(|live| QueueKey::new(id, live)))
        .collect();
    assert_eq!(queued, queue.order);
    let buried: BTreeMap<u64, WorkerId> = queue
        .workers
        .iter()
        .filter(|(_, entry)| entry.live.is_none())
        .map(|(id, entry)| (entry.removed.expect("a tombstone has a stamp"), id.clone()))
        .collect();
    assert_eq!(buried, queue.tombstones);
    assert!(
        queue
            .workers
            .values()
            .all(|entry| entry.live.is_some() != entry.removed.is_some())
    );
    assert!(queue.tracked() <= queue.limit());
}

fn tombstone_ids(queue: &WorkerQueue) -> Vec<String> {
    queue.tombstones.values().map(|id| id.0.clone()).collect()
}

#[test]
fn empty_queue_hands_out_nothing() {
    let mut queue = WorkerQueue::new();
    assert!(queue.is_empty());
    assert_eq!(queue.len(), 0);
    assert_eq!(queue.next(), None);
    assert!(queue.list().is_empty());
}

#[test]
fn most_spare_capacity_first() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 1, 10, 8)); // spare 2
    queue.update(added("b", 1, 10, 1)); // spare 9
    queue.update(added("c", 1, 4, 0)); // spare 4
    let order: Vec<String> = queue.list().into_iter().map(|w| w.id.0).collect();
    assert_eq!(order, ["b", "c", "a"]);
    assert_eq!(
        queue.next(),
        Some(Assignment {
            worker: id("b"),
            addr: "b:1".into()
        })
    );
    check(&queue);
}

#[test]
fn tie_goes_to_least_recently_handed_out() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 1, 5, 0));
    queue.update(added("b", 1, 5, 0));
    // Never handed out: tie on spare and recency, broken by id.
    assert_eq!(next_id(&mut queue), "a");
    assert_eq!(next_id(&mut queue), "b");
    // Both now spare 4; "a" went out longer ago.
    assert_eq!(next_id(&mut queue), "a");
    // Reports reset both counts; "b" was handed out longer ago than "a" now.
    queue.update(load("a", 2, 5, 0));
    queue.update(load("b", 2, 5, 0));
    assert_eq!(next_id(&mut queue), "b");
    check(&queue);
}

#[test]
fn back_to_back_requests_round_robin_over_equal_workers() {
    let mut queue = WorkerQueue::new();
    for name in ["c", "a", "b"] {
        queue.update(added(name, 1, 3, 0));
    }
    let order: Vec<String> = (0..9).map(|_| next_id(&mut queue)).collect();
    assert_eq!(order, ["a", "b", "c", "a", "b", "c", "a", "b", "c"]);
    assert!(
        queue
            .list()
            .iter()
            .all(|w| w.handed_out == 3 && w.spare == 0)
    );
    check(&queue);
}

#[test]
fn stale_updates_are_ignored() {
    let mut queue = WorkerQueue::new();
    assert_eq!(queue.update(added("a", 5, 10, 0)), Applied::Added);
    // Equal and lower seqs change nothing, whatever the change.
    assert_eq!(queue.update(load("a", 5, 10, 9)), Applied::Stale);
    assert_eq!(queue.update(load("a", 4, 10, 9)), Applied::Stale);
    assert_eq!(queue.update(added("a", 3, 1, 1)), Applied::Stale);
    assert_eq!(queue.update(removed("a", 5)), Applied::Stale);
    assert_eq!(queue.list()[0].load, 0);
    assert_eq!(queue.len(), 1);
    // A higher seq applies; seqs are per worker.
    assert_eq!(queue.update(load("a", 6, 10, 9)), Applied::LoadChanged);
    assert_eq!(queue.update(added("b", 1, 1, 0)), Applied::Added);
    assert_eq!(queue.list()[0].load, 9);
    // Added for a queued worker replaces it.
    assert_eq!(queue.update(added("a", 7, 20, 0)), Applied::Replaced);
    assert_eq!(queue.list()[0].capacity, 20);
    check(&queue);
}

#[test]
fn load_for_unknown_worker_is_reported_and_not_recorded() {
    let mut queue = WorkerQueue::new();
    assert_eq!(queue.update(load("x", 9, 1, 0)), Applied::UnknownWorker);
    assert!(queue.is_empty());
    // Its seq was not recorded: a lower-seq Added still applies.
    assert_eq!(queue.update(added("x", 1, 1, 0)), Applied::Added);
    check(&queue);
}

#[test]
fn tombstone_prevents_resurrection() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 1, 10, 0));
    assert_eq!(
        queue.update(removed("a", 3)),
        Applied::Removed { was_queued: true }
    );
    assert_eq!(queue.next(), None);
    // A late Added or Load from before the removal cannot bring it back.
    assert_eq!(queue.update(added("a", 2, 10, 0)), Applied::Stale);
    assert_eq!(queue.update(load("a", 3, 10, 0)), Applied::Stale);
    assert_eq!(queue.update(load("a", 4, 10, 0)), Applied::UnknownWorker);
    assert!(queue.is_empty());
    // A newer Added does.
    assert_eq!(queue.update(added("a", 5, 10, 0)), Applied::Added);
    assert_eq!(next_id(&mut queue), "a");
    check(&queue);
}

#[test]
fn removal_of_a_never_seen_worker_is_not_recorded() {
    let mut queue = WorkerQueue::new();
    assert_eq!(queue.update(removed("a", 2)), Applied::UnknownWorker);
    assert_eq!(queue.tracked(), 0);
    // The trade-off: a removal that overtakes the first Added is lost.
    assert_eq!(queue.update(added("a", 1, 10, 0)), Applied::Added);
    // Once seen, a removal is recorded and does win over an older Added.
    assert_eq!(
        queue.update(removed("a", 3)),
        Applied::Removed { was_queued: true }
    );
    assert_eq!(
        queue.update(removed("a", 4)),
        Applied::Removed { was_queued: false }
    );
    assert_eq!(queue.update(added("a", 3, 10, 0)), Applied::Stale);
    assert!(queue.is_empty());
    assert_eq!(queue.tracked(), 1);
    check(&queue);
}

#[test]
fn random_removals_do_not_grow_the_queue() {
    let mut queue = WorkerQueue::new();
    for i in 0..1000 {
        assert_eq!(
            queue.update(removed(&format!("x{i}"), 1)),
            Applied::UnknownWorker
        );
    }
    assert_eq!(queue.tracked(), 0);
    assert_eq!(WorkerQueue::new().limit(), DEFAULT_MAX_IDS);
    check(&queue);
}

#[test]
fn the_oldest_tombstone_is_evicted_to_make_room() {
    let mut queue = WorkerQueue::with_limit(4);
    for name in ["a", "b", "c", "d"] {
        assert_eq!(queue.update(added(name, 1, 1, 0)), Applied::Added);
    }
    // Removal order: c (disconnect), a (update), b; then a again, which makes it the
    // newest tombstone.
    assert!(queue.remove(&id("c")));
    queue.update(removed("a", 2));
    queue.update(removed("b", 2));
    queue.update(removed("a", 3));
    assert_eq!(tombstone_ids(&queue), ["c", "b", "a"]);
    check(&queue);

    // Each new id evicts the oldest tombstone.
    assert_eq!(queue.update(added("e", 1, 1, 0)), Applied::Added);
    assert_eq!(tombstone_ids(&queue), ["b", "a"]);
    assert_eq!(queue.tracked(), 4);
    // "c" is forgotten: its old Added counts as new and evicts "b".
    assert_eq!(queue.update(added("c", 1, 1, 0)), Applied::Added);
    assert_eq!(tombstone_ids(&queue), ["a"]);
    // "a" is still remembered: an Added older than its removal stays stale.
    assert_eq!(queue.update(added("a", 3, 1, 0)), Applied::Stale);
    // A re-added tombstone is no longer one, and takes no new room.
    assert_eq!(queue.update(added("a", 4, 1, 0)), Applied::Added);
    assert!(queue.tombstones.is_empty());
    assert_eq!(queue.tracked(), 4);
    check(&queue);
}

#[test]
fn a_full_queue_of_live_workers_refuses_new_ids() {
    let mut queue = WorkerQueue::with_limit(2);
    assert_eq!(queue.update(added("a", 1, 1, 0)), Applied::Added);
    assert_eq!(queue.update(added("b", 1, 1, 0)), Applied::Added);
    let before = queue.list();
    assert_eq!(queue.update(added("c", 5, 9, 0)), Applied::Full);
    assert_eq!(queue.list(), before);
    assert_eq!(queue.tracked(), 2);
    // Known ids are still updated.
    assert_eq!(queue.update(added("a", 2, 3, 0)), Applied::Replaced);
    assert_eq!(queue.update(load("b", 2, 3, 1)), Applied::LoadChanged);
    // Its seq was not recorded: once there is room, a lower seq applies.
    queue.update(removed("b", 3));
    assert_eq!(queue.update(added("c", 1, 1, 0)), Applied::Added);
    assert_eq!(queue.tracked(), 2);
    assert_eq!(queue.update(removed("b", 4)), Applied::UnknownWorker);
    // A limit of 0 refuses everything.
    let mut none = WorkerQueue::with_limit(0);
    assert_eq!(none.update(added("a", 1, 1, 0)), Applied::Full);
    assert!(none.is_empty());
    check(&queue);
    check(&none);
}

#[test]
fn remove_on_disconnect() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 4, 10, 0));
    queue.update(added("b", 1, 1, 0));
    assert!(queue.remove(&id("a")));
    assert!(!queue.remove(&id("a")));
    assert!(!queue.remove(&id("nobody")));
    assert_eq!(queue.len(), 1);
    assert_eq!(next_id(&mut queue), "b");
    assert_eq!(next_id(&mut queue), "b");
    // Updates up to its last seq stay ignored; a later Added brings it back.
    assert_eq!(queue.update(added("a", 4, 10, 0)), Applied::Stale);
    assert_eq!(queue.update(load("a", 5, 10, 0)), Applied::UnknownWorker);
    assert_eq!(queue.update(added("a", 5, 10, 0)), Applied::Added);
    assert_eq!(next_id(&mut queue), "a");
    check(&queue);
}

#[test]
fn reports_reset_the_handed_out_count() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 1, 10, 0));
    for _ in 0..4 {
        queue.next();
    }
    assert_eq!(queue.list()[0].handed_out, 4);
    assert_eq!(queue.list()[0].spare, 6);
    // The scheduler's report now includes the four hand-outs.
    queue.update(load("a", 2, 10, 4));
    let state = &queue.list()[0];
    assert_eq!((state.handed_out, state.spare), (0, 6));
    queue.next();
    queue.update(added("a", 3, 10, 1));
    assert_eq!(queue.list()[0].handed_out, 0);
    // A stale report does not reset it.
    queue.next();
    queue.update(load("a", 3, 10, 0));
    assert_eq!(queue.list()[0].handed_out, 1);
    check(&queue);
}

#[test]
fn overloaded_workers_are_still_handed_out() {
    let mut queue = WorkerQueue::new();
    queue.update(added("a", 1, 2, 9)); // spare -7
    queue.update(added("b", 1, 0, 3)); // spare -3
    assert_eq!(queue.list()[0].spare, -3);
    assert_eq!(next_id(&mut queue), "b");
    // An overloaded worker with u32::MAX load stays in range.
    queue.update(added("c", 1, 0, u32::MAX));
    assert_eq!(queue.list()[2].spare, -i64::from(u32::MAX));
    queue.update(removed("a", 2));
    queue.update(removed("b", 2));
    assert_eq!(next_id(&mut queue), "c");
    check(&queue);
}

#[test]
fn wire_types_implement_serde() {
    // serde derives exist on the types that travel as remote-method arguments.
    fn assert_serde<T: Serialize + for<'de> Deserialize<'de>>() {}
    assert_serde::<WorkerUpdate>();
    assert_serde::<Applied>();
    assert_serde::<Assignment>();
    assert_serde::<WorkerState>();
    assert_eq!(id("w1").to_string(), "w1");
}

#[test]
fn get_reads_one_queued_worker_as_list_shows_it() {
    let mut q = WorkerQueue::new();
    q.update(added("a", 1, 3, 1));
    q.next();
    assert_eq!(q.get(&id("a")), q.list().into_iter().next());
    assert_eq!(
        q.get(&id("a")).map(|w| (w.handed_out, w.spare)),
        Some((1, 1))
    );
    assert_eq!(q.get(&id("b")), None);
    q.remove(&id("a"));
    assert_eq!(q.get(&id("a")), None, "a tombstone is not queued");
}
