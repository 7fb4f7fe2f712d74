//! The rights of a [`BrokerSession`]: each call of each role, allowed or forbidden, that a
//! forbidden call changes nothing, the cap on workers per login, and the hijack of another
//! login's worker. In process through `BrokerRef::new(session)`, except the join tied to a
//! connection, which runs over loopback TCP.

use std::time::Duration;

use broker_server::queue::{Applied, Change, MAX_ADDR_LEN, WorkerId, WorkerState, WorkerUpdate};
use broker_server::role::BrokerCall;
use broker_server::{BrokerRef, BrokerService, BrokerSession, Forbidden, Role, WorkerEvent};
use rpc_core::{Client, Server};

/// How long any wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn added(name: &str, seq: u64) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change: Change::Added {
            addr: format!("{name}.test:1"),
            capacity: 2,
            load: 0,
        },
    }
}

fn load(name: &str, seq: u64, load: u32) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change: Change::Load { capacity: 2, load },
    }
}

fn removed(name: &str, seq: u64) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(name),
        seq,
        change: Change::Removed,
    }
}

fn session(service: &BrokerService, role: Role, identity: &str) -> BrokerRef {
    BrokerRef::new(BrokerSession::new(service.clone(), role, identity))
}

/// A service with workers `wa/a` (owned by login `wa`) and `wa/b` (queued by trusted code).
async fn service_with_workers() -> BrokerService {
    let service = BrokerService::new();
    let worker = session(&service, Role::Worker, "wa");
    assert_eq!(
        worker.join(added("wa/a", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    assert_eq!(service.publish(added("wa/b", 1)), Applied::Added);
    service
}

fn refused(role: Role, call: BrokerCall) -> Forbidden {
    Forbidden::Role { role, call }
}

fn not_yours(name: &str) -> Forbidden {
    Forbidden::NotYourWorker {
        worker: WorkerId::from(name),
    }
}

#[tokio::test]
async fn a_front_end_asks_and_may_change_nothing() {
    let service = service_with_workers().await;
    let front_end = session(&service, Role::FrontEnd, "fe");
    assert!(front_end.next_worker().await.unwrap().unwrap().is_some());
    let page = front_end.workers(0, 10).await.unwrap().unwrap();
    assert_eq!((page.workers.len(), page.total), (2, 2));

    let before: Vec<WorkerState> = service.workers();
    let publish = refused(Role::FrontEnd, BrokerCall::Publish);
    let join = refused(Role::FrontEnd, BrokerCall::Join);
    assert_eq!(
        front_end.publish(removed("wa/a", 9)).await.unwrap(),
        Err(publish.clone())
    );
    assert_eq!(
        front_end.publish(added("c", 1)).await.unwrap(),
        Err(publish)
    );
    assert_eq!(front_end.join(added("c", 1)).await.unwrap(), Err(join));
    assert_eq!(service.workers(), before);
    assert_eq!(service.owner(&WorkerId::from("c")), None);
}

#[tokio::test]
async fn a_worker_publishes_about_its_own_workers_only() {
    let service = service_with_workers().await;
    let worker = session(&service, Role::Worker, "wa");
    assert_eq!(
        service.owner(&WorkerId::from("wa/a")).as_deref(),
        Some("wa")
    );

    // It may not ask for workers.
    let before = service.workers();
    assert_eq!(
        worker.next_worker().await.unwrap(),
        Err(refused(Role::Worker, BrokerCall::NextWorker))
    );
    assert_eq!(
        worker.workers(0, 10).await.unwrap(),
        Err(refused(Role::Worker, BrokerCall::Workers))
    );
    assert_eq!(
        service.workers(),
        before,
        "a refused next_worker hands nobody out"
    );

    // Its own worker: every update.
    assert_eq!(
        worker.publish(load("wa/a", 2, 1)).await.unwrap(),
        Ok(Applied::LoadChanged)
    );
    assert_eq!(
        worker.publish(removed("wa/a", 3)).await.unwrap(),
        Ok(Applied::Removed { was_queued: true })
    );
    // Removed and back: the id is still its own.
    assert_eq!(
        worker.join(added("wa/a", 4)).await.unwrap(),
        Ok(Applied::Added)
    );
    assert_eq!(
        service.owner(&WorkerId::from("wa/a")).as_deref(),
        Some("wa")
    );

    // `wa/b` was queued by trusted code: nobody owns it, so only an `Added` of the login it is
    // named after may claim it.
    let before = service.workers();
    assert_eq!(
        worker.publish(load("wa/b", 2, 1)).await.unwrap(),
        Err(not_yours("wa/b"))
    );
    assert_eq!(
        worker.publish(removed("wa/b", 2)).await.unwrap(),
        Err(not_yours("wa/b"))
    );
    assert_eq!(service.workers(), before);
    assert_eq!(
        worker.publish(added("wa/b", 2)).await.unwrap(),
        Ok(Applied::Replaced)
    );
    assert_eq!(
        service.owner(&WorkerId::from("wa/b")).as_deref(),
        Some("wa")
    );
}

#[tokio::test]
async fn an_update_that_is_not_applied_claims_nothing() {
    let service = BrokerService::new();
    assert_eq!(service.publish(added("w/old", 10)), Applied::Added);
    let worker = session(&service, Role::Worker, "w");
    // Stale: the broker has newer news of `old`; the login does not own it for that.
    assert_eq!(
        worker.publish(added("w/old", 5)).await.unwrap(),
        Ok(Applied::Stale)
    );
    assert_eq!(service.owner(&WorkerId::from("w/old")), None);
    let mut far = added("w/far", 1);
    if let Change::Added { addr, .. } = &mut far.change {
        *addr = "x".repeat(MAX_ADDR_LEN + 1);
    }
    assert_eq!(worker.join(far).await.unwrap(), Ok(Applied::Invalid));
    assert_eq!(service.owner(&WorkerId::from("w/far")), None);
}

#[tokio::test]
async fn a_worker_login_owns_a_limited_number_of_workers() {
    let service = BrokerService::new().with_max_workers_per_identity(2);
    assert_eq!(service.max_workers_per_identity(), 2);
    let worker = session(&service, Role::Worker, "w");
    assert_eq!(
        worker.join(added("w/1", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    assert_eq!(
        worker.publish(added("w/2", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    let beyond = worker.join(added("w/3", 1)).await.unwrap().unwrap_err();
    assert_eq!(
        beyond,
        Forbidden::TooManyWorkers {
            worker: WorkerId::from("w/3"),
            limit: 2
        }
    );
    assert!(
        beyond.to_string().contains("already owns 2 workers"),
        "{beyond}"
    );
    assert_eq!(service.len(), 2);
    assert_eq!(service.owner(&WorkerId::from("w/3")), None);
    // Removing one of its workers does not give the room back: ownership is kept.
    worker.publish(removed("w/1", 2)).await.unwrap().unwrap();
    assert!(worker.publish(added("w/3", 1)).await.unwrap().is_err());
    // Another login has its own allowance.
    let other = session(&service, Role::Worker, "v");
    assert_eq!(
        other.publish(added("v/3", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    assert_eq!(BrokerService::new().max_workers_per_identity(), 4);
}

#[tokio::test]
async fn another_login_cannot_hijack_a_worker() {
    let service = BrokerService::new();
    let a = session(&service, Role::Worker, "a");
    let b = session(&service, Role::Worker, "b");
    assert_eq!(a.join(added("a/w1", 1)).await.unwrap(), Ok(Applied::Added));
    let before = service.workers();

    // B claims a/w1 with a sequence number A can never pass, then removes it.
    assert_eq!(
        b.publish(added("a/w1", u64::MAX - 1)).await.unwrap(),
        Err(not_yours("a/w1"))
    );
    assert_eq!(
        b.publish(removed("a/w1", u64::MAX)).await.unwrap(),
        Err(not_yours("a/w1"))
    );
    assert_eq!(
        b.join(added("a/w1", u64::MAX)).await.unwrap(),
        Err(not_yours("a/w1"))
    );
    assert_eq!(
        b.publish(load("a/w1", u64::MAX, 0)).await.unwrap(),
        Err(not_yours("a/w1"))
    );

    // Nothing changed: a/w1 is queued at A's address, and A goes on publishing.
    assert_eq!(service.workers(), before);
    assert_eq!(before[0].addr, "a/w1.test:1");
    assert_eq!(service.owner(&WorkerId::from("a/w1")).as_deref(), Some("a"));
    assert_eq!(
        a.publish(load("a/w1", 2, 1)).await.unwrap(),
        Ok(Applied::LoadChanged)
    );
    assert_eq!(service.workers()[0].load, 1);
}

#[tokio::test]
async fn an_admin_may_do_everything() {
    let service = service_with_workers().await;
    let admin = session(&service, Role::Admin, "root");
    assert!(admin.next_worker().await.unwrap().unwrap().is_some());
    assert_eq!(admin.workers(0, 10).await.unwrap().unwrap().total, 2);
    // It removes any worker, its owner's included...
    assert_eq!(
        admin.publish(removed("wa/a", 100)).await.unwrap(),
        Ok(Applied::Removed { was_queued: true })
    );
    // ...which keeps its owner all the same.
    assert_eq!(
        service.owner(&WorkerId::from("wa/a")).as_deref(),
        Some("wa")
    );
    // It joins and publishes about any worker, and owns none for that.
    assert_eq!(admin.join(added("c", 1)).await.unwrap(), Ok(Applied::Added));
    assert_eq!(
        admin.publish(load("wa/b", 2, 1)).await.unwrap(),
        Ok(Applied::LoadChanged)
    );
    assert_eq!(service.owner(&WorkerId::from("c")), None);
    let ids: Vec<String> = service.workers().into_iter().map(|w| w.id.0).collect();
    assert_eq!(ids, ["c", "wa/b"]);
}

/// A join through a session served as a connection's root ties the worker to that
/// connection, exactly as the trusted service's join does.
#[tokio::test]
async fn a_join_through_a_session_is_tied_to_its_connection() {
    let service = BrokerService::new();
    let root = BrokerRef::new(BrokerSession::new(service.clone(), Role::Worker, "w"));
    let server = Server::bind("127.0.0.1:0", root).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let mut events = service.subscribe();
    let client = Client::connect(addr).await.unwrap();
    let worker: BrokerRef = client.root().await.unwrap();
    assert_eq!(
        worker.join(added("w/1", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    let joined = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(joined, WorkerEvent::Joined { .. }), "{joined:?}");

    client.close();
    let left = tokio::time::timeout(PATIENCE, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(left, WorkerEvent::Left { .. }), "{left:?}");
    assert!(service.is_empty());
    assert_eq!(service.owner(&WorkerId::from("w/1")).as_deref(), Some("w"));

    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, serving)
        .await
        .unwrap()
        .unwrap();
}

/// A worker login may only use ids named after it, whoever queued them first: not a plain
/// id the trusted code or an admin queued, nor another login's.
#[tokio::test]
async fn a_worker_login_may_only_use_ids_named_after_it() {
    let service = service_with_workers().await;
    assert_eq!(service.publish(added("plain", 1)), Applied::Added);
    let admin = session(&service, Role::Admin, "root");
    assert_eq!(
        admin.join(added("wb/x", 1)).await.unwrap(),
        Ok(Applied::Added)
    );
    let before = service.workers();
    let mallory = session(&service, Role::Worker, "mallory");
    for id in ["plain", "wa/a", "wa/b", "wb/x", "wa", "mallory2"] {
        assert_eq!(
            mallory.publish(added(id, u64::MAX - 1)).await.unwrap(),
            Err(not_yours(id))
        );
    }
    assert_eq!(service.workers(), before);
    // The login the admin's worker is named after may take it over.
    let wb = session(&service, Role::Worker, "wb");
    assert_eq!(
        wb.publish(added("wb/x", 2)).await.unwrap(),
        Ok(Applied::Replaced)
    );
}
