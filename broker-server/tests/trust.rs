//! The broker trusts roles, not peers, over real TLS on loopback: the hijack of issue 8 (a
//! second connection publishing `Added` with `seq = u64::MAX - 1` and then `Removed` with
//! `seq = u64::MAX` for another worker's id) is refused and changes nothing; a worker login
//! may only use ids named after it (`<user>/...`) and owns at most a few; a front end may only ask; before login nothing is reachable.

use std::time::Duration;

use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};
use broker_server::{
    Access, BrokerCredentials, BrokerRef, Forbidden, MAX_PAGE, Role, RunningBroker, Users,
};
use rpc_core::login::LoginRef;
use rpc_core::tls::{ClientTls, Identity};
use rpc_core::{CallError, Client, LoginError, RemoteErrorKind, RemoteRef};

const PATIENCE: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("timed out waiting")
}

/// A TLS broker with two worker users, a front end and an admin (password = name + "!").
async fn broker() -> RunningBroker {
    let users = Users::new();
    for (name, role) in [
        ("alice", Role::Worker),
        ("mallory", Role::Worker),
        ("front", Role::FrontEnd),
        ("root", Role::Admin),
    ] {
        users.add(name, role, &format!("{name}!")).unwrap();
    }
    let identity = Identity::generate(&["localhost"]).unwrap();
    broker_server::spawn("127.0.0.1:0", Access::tls(users, identity))
        .await
        .unwrap()
}

async fn log_in(broker: &RunningBroker, user: &str) -> BrokerRef {
    let credentials = BrokerCredentials::new(broker.location(), user, &format!("{user}!"));
    within(credentials.connect()).await.unwrap()
}

fn update(worker: &str, seq: u64, change: Change) -> WorkerUpdate {
    WorkerUpdate {
        worker: WorkerId::from(worker),
        seq,
        change,
    }
}

fn added(worker: &str, seq: u64, addr: &str) -> WorkerUpdate {
    let change = Change::Added {
        addr: addr.into(),
        capacity: 2,
        load: 0,
    };
    update(worker, seq, change)
}

#[track_caller]
fn assert_forbidden<T: std::fmt::Debug>(answer: Result<Result<T, Forbidden>, CallError>) -> String {
    match answer {
        Ok(Err(forbidden)) => forbidden.to_string(),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn another_worker_cannot_hijack_or_remove_a_worker() {
    let broker = broker().await;
    let alice = log_in(&broker, "alice").await;
    assert_eq!(
        alice
            .join(added("alice/w1", 1, "10.0.0.1:1"))
            .await
            .unwrap(),
        Ok(Applied::Added)
    );
    let mallory = log_in(&broker, "mallory").await;
    let hijack = added("alice/w1", u64::MAX - 1, "127.0.0.9:6666");
    let said = assert_forbidden(mallory.publish(hijack.clone()).await);
    assert!(said.contains("alice/w1"), "{said}");
    assert_forbidden(mallory.join(hijack).await);
    assert_forbidden(
        mallory
            .publish(update("w1", u64::MAX, Change::Removed))
            .await,
    );
    // Nothing changed: alice/w1 is queued at its own address, and alice still runs it.
    let front = log_in(&broker, "front").await;
    let next = front.next_worker().await.unwrap().unwrap().unwrap();
    assert_eq!(
        (next.worker.as_str(), next.addr.as_str()),
        ("alice/w1", "10.0.0.1:1")
    );
    let load = Change::Load {
        capacity: 2,
        load: 1,
    };
    assert_eq!(
        alice.publish(update("alice/w1", 2, load)).await.unwrap(),
        Ok(Applied::LoadChanged)
    );
    // The admin may remove any worker.
    let root = log_in(&broker, "root").await;
    assert_eq!(
        root.publish(update("alice/w1", 3, Change::Removed))
            .await
            .unwrap(),
        Ok(Applied::Removed { was_queued: true })
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_worker_login_owns_at_most_its_cap_and_a_front_end_only_asks() {
    let broker = broker().await;
    let mallory = log_in(&broker, "mallory").await;
    let cap = broker_server::ownership::DEFAULT_MAX_WORKERS_PER_IDENTITY;
    for n in 0..cap {
        let joined = mallory
            .join(added(&format!("mallory/{n}"), 1, "10.0.0.2:1"))
            .await;
        assert_eq!(joined.unwrap(), Ok(Applied::Added));
    }
    let said = assert_forbidden(
        mallory
            .join(added("mallory/one-too-many", 1, "10.0.0.2:1"))
            .await,
    );
    assert!(said.contains(&cap.to_string()), "{said}");
    assert_forbidden(mallory.workers(0, MAX_PAGE).await);
    assert_forbidden(mallory.next_worker().await);

    let front = log_in(&broker, "front").await;
    assert_forbidden(front.publish(update("mallory/0", 9, Change::Removed)).await);
    assert_forbidden(front.join(added("f1", 1, "10.0.0.3:1")).await);
    let page = front.workers(0, MAX_PAGE).await.unwrap().unwrap();
    assert_eq!(page.total, u64::from(cap));
    broker.shutdown().await;
}

#[tokio::test]
async fn before_login_the_broker_answers_nothing_but_login() {
    let broker = broker().await;
    // Without the URL's secret, the address and the fingerprint reach nothing: no root.
    let fingerprint = broker.url().unwrap().fingerprint();
    let addr = broker.local_addr().to_string();
    let pinned = within(Client::connect_tls(&addr, &ClientTls::pinned(fingerprint))).await;
    let rootless: LoginRef = pinned.unwrap().root().await.unwrap();
    let wrong = rpc_core::login::Credentials::new("alice", "alice!");
    match rootless.log_in::<BrokerRef>(&wrong, None).await {
        Err(e) => assert_eq!(e.remote_kind(), Some(RemoteErrorKind::NoSuchObject), "{e}"),
        Ok(_) => panic!("logged in without the URL's secret"),
    }
    let login: LoginRef = within(Client::connect_url(&broker.location()))
        .await
        .unwrap();
    // The login object has no broker methods.
    let asked: Result<Option<broker_server::queue::Assignment>, CallError> =
        login.object().call_remote("next_worker", ()).await;
    assert_eq!(
        asked.unwrap_err().remote_kind(),
        Some(RemoteErrorKind::NoSuchMethod)
    );
    // Wrong passwords: refused, and the third closes the connection.
    let wrong = rpc_core::login::Credentials::new("alice", "not alice's");
    for expected in [
        LoginError::Refused,
        LoginError::Refused,
        LoginError::TooManyAttempts,
    ] {
        match login.log_in::<BrokerRef>(&wrong, None).await {
            Err(CallError::Login(e)) => assert_eq!(e, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
    within(login.peer().unwrap().disconnected()).await;
    broker.shutdown().await;
}
