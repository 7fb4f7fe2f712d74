//! The broker over real loopback TCP, served by [`broker_server::run`] (or `run_service`, to
//! watch its events) and used by an admin login (which may do everything; what the other
//! roles may do is in `trust.rs`): the order workers are handed out in, stale and removing updates, and
//! workers leaving the queue when their connection drops; the bound on tracked workers.
//!
//! Nothing here sleeps to wait: tests wait for an event (a worker gone from `workers()`, a
//! `WorkerEvent`) under a generous timeout, and every broker a test starts, it stops.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};
use broker_server::{Access, BrokerRef, BrokerService, MAX_PAGE, Role, Users, WorkerEvent};
use rpc_core::Client;
use rpc_core::login::{Credentials, LoginRef};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// The one user of the test brokers, and its password.
const ADMIN: &str = "admin";
const PASSWORD: &str = "admin's password";

/// How long any wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// A broker served on a free loopback port by a task of the test.
struct TestBroker {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), rpc_core::CallError>>,
}

impl TestBroker {
    /// Serves a fresh broker with [`broker_server::run`].
    async fn start() -> TestBroker {
        Self::start_with(None).await
    }

    /// Serves `service` with [`broker_server::run_service`] (fresh with `None`), over
    /// loopback TCP, to one user: an admin, who may do everything.
    async fn start_with(service: Option<BrokerService>) -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let users = Users::new();
        users.add(ADMIN, Role::Admin, PASSWORD).unwrap();
        let access = Access::plaintext(users);
        let task = match service {
            None => tokio::spawn(broker_server::run(listener, access, shutdown)),
            Some(service) => tokio::spawn(broker_server::run_service(
                listener, service, access, shutdown,
            )),
        };
        TestBroker { addr, stop, task }
    }

    /// A new connection to the broker, logged in as the admin.
    async fn connect(&self) -> (Client, BrokerRef) {
        let client = Client::connect(self.addr).await.unwrap();
        let login: LoginRef = client.root().await.unwrap();
        let broker = login
            .log_in(&Credentials::new(ADMIN, PASSWORD), None)
            .await
            .unwrap();
        (client, broker)
    }

    /// Shuts the broker down and waits until it has.
    async fn stop(self) {
        let _ = self.stop.send(());
        within(self.task).await.unwrap().unwrap();
    }
}

/// `future`'s output, or a failed test after [`PATIENCE`].
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out waiting")
}

fn added(name: &str, seq: u64, capacity: u32, load: u32) -> WorkerUpdate {
    added_at(name, seq, capacity, load, &format!("{name}.test:1"))
}

fn added_at(name: &str, seq: u64, capacity: u32, load: u32, addr: &str) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change: Change::Added {
            addr: addr.to_owned(),
            capacity,
            load,
        },
    }
}

fn update(name: &str, seq: u64, change: Change) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change,
    }
}

/// The ids of the queued workers, head first.
async fn worker_ids(broker: &BrokerRef) -> Vec<String> {
    broker
        .workers(0, MAX_PAGE)
        .await
        .unwrap()
        .unwrap()
        .workers
        .into_iter()
        .map(|w| w.id.0)
        .collect()
}

/// The id of the worker `broker` hands out next; fails the test if it hands out none.
async fn next_id(broker: &BrokerRef) -> String {
    let next = broker.next_worker().await.unwrap().unwrap();
    next.expect("a worker to hand out").worker.0
}

/// Waits until `workers()` no longer lists `name`: asks again on every tick of a short
/// interval, within [`PATIENCE`].
async fn until_gone(broker: &BrokerRef, name: &str) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    within(async {
        while worker_ids(broker).await.iter().any(|id| id == name) {
            tick.tick().await;
        }
    })
    .await
}

/// The next event about `name`, within [`PATIENCE`].
async fn next_event_about(
    events: &mut broadcast::Receiver<WorkerEvent>,
    name: &str,
) -> WorkerEvent {
    within(async {
        loop {
            let event = events.recv().await.expect("the event stream ended");
            let worker = match &event {
                WorkerEvent::Joined { worker, .. }
                | WorkerEvent::Left { worker, .. }
                | WorkerEvent::DisconnectIgnored { worker } => worker,
                other => panic!("unexpected event {other:?}"),
            };
            if worker.as_str() == name {
                return event;
            }
        }
    })
    .await
}

#[tokio::test]
async fn no_worker_means_none() {
    let broker = TestBroker::start().await;
    let (_client, front_end) = broker.connect().await;
    assert_eq!(front_end.next_worker().await.unwrap().unwrap(), None);
    assert!(
        front_end
            .workers(0, MAX_PAGE)
            .await
            .unwrap()
            .unwrap()
            .workers
            .is_empty()
    );
    broker.stop().await;
}

#[tokio::test]
async fn most_spare_capacity_first_then_back_to_back_requests_spread() {
    let broker = TestBroker::start().await;
    // Three workers, each joined over its own connection: spare capacity 4, 2 and 1.
    let mut workers = Vec::new();
    for (name, capacity) in [("c", 1), ("a", 4), ("b", 2)] {
        let (client, proxy) = broker.connect().await;
        let joined = proxy
            .join(added(name, 1, capacity, 0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(joined, Applied::Added);
        workers.push(client);
    }
    let (_client, front_end) = broker.connect().await;
    assert_eq!(worker_ids(&front_end).await, ["a", "b", "c"]);

    let mut handed_out = Vec::new();
    for _ in 0..7 {
        let assignment = front_end
            .next_worker()
            .await
            .unwrap()
            .unwrap()
            .expect("a worker");
        assert_eq!(assignment.addr, format!("{}.test:1", assignment.worker));
        handed_out.push(assignment.worker.0);
    }
    // "a" (spare 4) twice, then every hand-out counts: a 2, b 2 (b never handed out goes
    // first), a, then all at spare 1 in least-recently-handed-out order.
    assert_eq!(handed_out, ["a", "a", "b", "a", "c", "b", "a"]);
    let states = front_end
        .workers(0, MAX_PAGE)
        .await
        .unwrap()
        .unwrap()
        .workers;
    assert!(states.iter().all(|w| w.spare == 0), "{states:?}");

    // A scheduler's report resets the hand-out count.
    let reported = front_end
        .publish(update(
            "b",
            2,
            Change::Load {
                capacity: 2,
                load: 0,
            },
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reported, Applied::LoadChanged);
    assert_eq!(next_id(&front_end).await, "b");

    drop(workers);
    broker.stop().await;
}

#[tokio::test]
async fn stale_updates_are_ignored_over_the_wire() {
    let broker = TestBroker::start().await;
    let (_client, scheduler) = broker.connect().await;
    assert_eq!(
        scheduler
            .publish(added("w", 5, 10, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Added
    );
    let stale = [
        update(
            "w",
            4,
            Change::Load {
                capacity: 10,
                load: 9,
            },
        ),
        update(
            "w",
            5,
            Change::Load {
                capacity: 10,
                load: 9,
            },
        ),
        added("w", 3, 1, 1),
        update("w", 5, Change::Removed),
    ];
    for old in stale {
        assert_eq!(
            scheduler.publish(old).await.unwrap().unwrap(),
            Applied::Stale
        );
    }
    let state = &scheduler
        .workers(0, MAX_PAGE)
        .await
        .unwrap()
        .unwrap()
        .workers[0];
    assert_eq!((state.capacity, state.load), (10, 0));

    let newer = update(
        "w",
        6,
        Change::Load {
            capacity: 10,
            load: 9,
        },
    );
    assert_eq!(
        scheduler.publish(newer).await.unwrap().unwrap(),
        Applied::LoadChanged
    );
    assert_eq!(
        scheduler
            .workers(0, MAX_PAGE)
            .await
            .unwrap()
            .unwrap()
            .workers[0]
            .load,
        9
    );
    let unknown = update(
        "nobody",
        1,
        Change::Load {
            capacity: 1,
            load: 0,
        },
    );
    assert_eq!(
        scheduler.publish(unknown).await.unwrap().unwrap(),
        Applied::UnknownWorker
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_removed_worker_is_never_handed_out_again() {
    let broker = TestBroker::start().await;
    let (_client, scheduler) = broker.connect().await;
    scheduler
        .publish(added("gone", 1, 100, 0))
        .await
        .unwrap()
        .unwrap();
    scheduler
        .publish(added("kept", 1, 1, 0))
        .await
        .unwrap()
        .unwrap();
    let removed = scheduler
        .publish(update("gone", 2, Change::Removed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed, Applied::Removed { was_queued: true });
    assert_eq!(worker_ids(&scheduler).await, ["kept"]);
    for _ in 0..3 {
        assert_eq!(next_id(&scheduler).await, "kept");
    }
    // A late Added from before the removal does not bring it back.
    assert_eq!(
        scheduler
            .publish(added("gone", 1, 100, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Stale
    );
    assert_eq!(worker_ids(&scheduler).await, ["kept"]);
    broker.stop().await;
}

#[tokio::test]
async fn a_worker_leaves_when_its_connection_drops() {
    let broker = TestBroker::start().await;
    let (_front_end_client, front_end) = broker.connect().await;
    let (worker_client, worker) = broker.connect().await;
    assert_eq!(
        worker.join(added("w", 1, 4, 0)).await.unwrap().unwrap(),
        Applied::Added
    );
    front_end
        .publish(added("other", 1, 1, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(worker_ids(&front_end).await, ["w", "other"]);

    // The worker process goes away: every handle to its connection is dropped.
    drop(worker);
    drop(worker_client);
    until_gone(&front_end, "w").await;
    assert_eq!(worker_ids(&front_end).await, ["other"]);
    assert_eq!(next_id(&front_end).await, "other");

    // Its last seq is its tombstone: it comes back only with a newer one.
    let (_again_client, again) = broker.connect().await;
    assert_eq!(
        again.join(added("w", 1, 4, 0)).await.unwrap().unwrap(),
        Applied::Stale
    );
    assert_eq!(
        again.join(added("w", 2, 4, 0)).await.unwrap().unwrap(),
        Applied::Added
    );
    assert_eq!(worker_ids(&front_end).await, ["w", "other"]);
    broker.stop().await;
}

#[tokio::test]
async fn a_closed_connection_takes_every_worker_joined_over_it() {
    let broker = TestBroker::start().await;
    let (_front_end_client, front_end) = broker.connect().await;
    let (client, worker) = broker.connect().await;
    for name in ["x", "y"] {
        worker.join(added(name, 1, 1, 0)).await.unwrap().unwrap();
    }
    client.close();
    until_gone(&front_end, "x").await;
    until_gone(&front_end, "y").await;
    assert_eq!(front_end.next_worker().await.unwrap().unwrap(), None);
    broker.stop().await;
}

/// Closes `client`, whose connection `witness` joined over, and waits until the broker has
/// seen it close: `witness` left. Every disconnect callback of a connection runs when it
/// closes, so by then any other worker still tied to it is gone too.
async fn close_and_wait(
    client: Client,
    events: &mut broadcast::Receiver<WorkerEvent>,
    witness: &str,
) {
    client.close();
    drop(client);
    loop {
        if let WorkerEvent::Left { .. } = next_event_about(events, witness).await {
            return;
        }
    }
}

#[tokio::test]
async fn a_rejoined_worker_is_not_removed_by_its_old_connection() {
    let service = BrokerService::new();
    let mut events = service.subscribe();
    let broker = TestBroker::start_with(Some(service)).await;
    let (_front_end_client, front_end) = broker.connect().await;

    let (old_client, old) = broker.connect().await;
    let joined = old
        .join(added_at("w", 1, 4, 0, "old:1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined, Applied::Added);
    old.join(added("witness", 1, 1, 0)).await.unwrap().unwrap();

    // The worker reconnects and joins again before the broker notices that the old
    // connection is gone.
    let (new_client, new) = broker.connect().await;
    let rejoined = new
        .join(added_at("w", 2, 4, 0, "new:1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rejoined, Applied::Replaced);

    drop(old);
    close_and_wait(old_client, &mut events, "witness").await;
    let states = front_end
        .workers(0, MAX_PAGE)
        .await
        .unwrap()
        .unwrap()
        .workers;
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(
        (states[0].id.as_str(), states[0].addr.as_str()),
        ("w", "new:1")
    );

    // The new connection is the one that counts now.
    drop(new);
    drop(new_client);
    until_gone(&front_end, "w").await;
    broker.stop().await;
}

#[tokio::test]
async fn a_worker_removed_by_update_and_added_back_is_untied_from_its_connection() {
    let service = BrokerService::new();
    let mut events = service.subscribe();
    let broker = TestBroker::start_with(Some(service)).await;
    let (_scheduler_client, scheduler) = broker.connect().await;

    let (worker_client, worker) = broker.connect().await;
    worker.join(added("w", 1, 4, 0)).await.unwrap().unwrap();
    worker
        .join(added("witness", 1, 1, 0))
        .await
        .unwrap()
        .unwrap();
    let removed = scheduler
        .publish(update("w", 2, Change::Removed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed, Applied::Removed { was_queued: true });
    assert_eq!(
        scheduler
            .publish(added("w", 3, 4, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Added
    );

    drop(worker);
    close_and_wait(worker_client, &mut events, "witness").await;
    assert_eq!(worker_ids(&scheduler).await, ["w"]);
    broker.stop().await;
}

#[tokio::test]
async fn removing_a_never_seen_worker_records_nothing() {
    let broker = TestBroker::start().await;
    let (_client, scheduler) = broker.connect().await;
    assert_eq!(
        scheduler
            .publish(update("nobody", 2, Change::Removed))
            .await
            .unwrap()
            .unwrap(),
        Applied::UnknownWorker
    );
    // Nothing was recorded: an Added with a lower seq still applies.
    assert_eq!(
        scheduler
            .publish(added("nobody", 1, 1, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Added
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_worker_beyond_the_limit_is_refused() {
    let service = BrokerService::with_limit(2);
    let broker = TestBroker::start_with(Some(service.clone())).await;
    let (_scheduler_client, scheduler) = broker.connect().await;
    let (_worker_client, worker) = broker.connect().await;
    assert_eq!(
        scheduler
            .publish(added("a", 1, 1, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Added
    );
    assert_eq!(
        worker.join(added("b", 1, 1, 0)).await.unwrap().unwrap(),
        Applied::Added
    );
    // Both ids are queued workers: a third is refused, over publish and join alike.
    assert_eq!(
        scheduler
            .publish(added("c", 1, 1, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Full
    );
    assert_eq!(
        worker.join(added("c", 1, 1, 0)).await.unwrap().unwrap(),
        Applied::Full
    );
    assert_eq!(worker_ids(&scheduler).await, ["a", "b"]);

    // Once "a" is removed, its tombstone makes way for "c".
    assert_eq!(
        scheduler
            .publish(update("a", 2, Change::Removed))
            .await
            .unwrap()
            .unwrap(),
        Applied::Removed { was_queued: true }
    );
    assert_eq!(
        scheduler
            .publish(added("c", 1, 1, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Added
    );
    assert_eq!(worker_ids(&scheduler).await, ["b", "c"]);
    // "a"'s tombstone is gone: the queue is full of workers again.
    assert_eq!(
        scheduler
            .publish(added("a", 1, 1, 0))
            .await
            .unwrap()
            .unwrap(),
        Applied::Full
    );
    assert_eq!(service.workers().len(), 2);
    broker.stop().await;
}
