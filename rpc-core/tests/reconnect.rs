//! `ReconnectingClient` over real loopback TCP (and TLS): a server stopped and started again
//! on the same port; calls in flight at the loss, calls after it, references of the old
//! connection; the state it reports; and its background task stopping on close and drop.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Calc, CalculatorRef, PATIENCE, Probe, TestServer, assert_serves, within};
use rpc_core::tls::{ClientTls, Identity, ServerTls};
use rpc_core::{
    Backoff, CallError, ConnectionState, ReconnectOptions, ReconnectingClient, RemoteRef, Server,
};
use tokio::sync::watch;

/// Quick retries, so that the tests do not wait for the default back-off.
fn options() -> ReconnectOptions {
    ReconnectOptions::default().with_backoff(Backoff::new(
        Duration::from_millis(5),
        2.0,
        Duration::from_millis(100),
    ))
}

/// A calculator with id `id` served on `addr` (a port used before: bound again).
async fn serve_on(addr: SocketAddr, id: u32) -> (TestServer, Probe) {
    let (root, probe) = Calc::root(id);
    let server = Server::bind(addr, root)
        .await
        .expect("bind the same port again");
    (TestServer::serve(server), probe)
}

/// Waits until the state satisfies `what`; returns that state.
async fn state_until(
    states: &mut watch::Receiver<ConnectionState>,
    what: &str,
    f: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    within(what, states.wait_for(f))
        .await
        .expect("the client is gone")
        .clone()
}

/// The reason of a `Disconnected` error; panics on anything else.
#[track_caller]
fn disconnected<T: std::fmt::Debug>(result: Result<T, CallError>) -> String {
    match result {
        Err(CallError::Disconnected { reason }) => reason,
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// Waits until the client's background task is gone: the state's sender then closes.
async fn task_ends(mut states: watch::Receiver<ConnectionState>) {
    within("the background task to end", async {
        while states.changed().await.is_ok() {}
    })
    .await;
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_to_and_old_references_stay_dead() {
    let (mut first, mut probe) = TestServer::calc(1).await;
    let addr = first.addr;
    let client = ReconnectingClient::<CalculatorRef>::connect(addr, options());
    let old = client
        .root_within(PATIENCE)
        .await
        .expect("a first connection");
    assert_serves(&old, 1).await;
    let mut states = client.watch_state();
    match client.state() {
        ConnectionState::Connected {
            connections, peer, ..
        } => {
            assert_eq!(connections, 1);
            assert_eq!(peer, addr.to_string());
        }
        other => panic!("expected Connected, got {other:?}"),
    }

    // A call in flight when the server dies fails with Disconnected.
    let in_flight = tokio::spawn({
        let old = old.clone();
        async move { old.wait(7).await }
    });
    assert_eq!(probe.started(1).await, [7]);
    let _ = first.begin_shutdown_abruptly().await;
    let reason = disconnected(within("the call in flight", in_flight).await.unwrap());

    // While the server is down the client keeps trying, counting its attempts.
    let down = state_until(&mut states, "three failed attempts", |s| s.attempts() >= 3).await;
    let ConnectionState::Reconnecting {
        lost, last_error, ..
    } = &down
    else {
        panic!("expected Reconnecting, got {down:?}")
    };
    // The call in flight may have failed before the client noticed the loss, or after.
    let lost = lost.as_deref().expect("why the connection was lost");
    assert!(reason.starts_with(lost), "{reason} / {lost}");
    let last_error = last_error.as_ref().expect("the last error");
    assert!(
        last_error.to_string().contains("could not connect"),
        "{last_error}"
    );
    let not_now = disconnected(client.root());
    assert!(
        not_now.contains("not connected") && not_now.contains("failed attempts"),
        "{not_now}"
    );
    assert!(not_now.contains("root_within"), "{not_now}");

    // The server comes back on the same port: the client reconnects and fetches the new root.
    let (_second, _probe) = serve_on(addr, 2).await;
    let up = state_until(
        &mut states,
        "the reconnection",
        ConnectionState::is_connected,
    )
    .await;
    assert!(
        matches!(up, ConnectionState::Connected { connections: 2, .. }),
        "{up:?}"
    );
    let new = client.root().expect("connected");
    assert_serves(&new, 2).await;
    assert!(!new.same_object(&old));

    // The old reference stays dead, and says why.
    let old_says = disconnected(within("a call on the old root", old.calculate(1, 2)).await);
    assert!(old_says.starts_with(&reason), "{old_says}");
    assert!(old_says.contains("replaces with a new one"), "{old_says}");
    assert!(old_says.contains("take the root again"), "{old_says}");
    assert_serves(&client.root_within(PATIENCE).await.unwrap(), 2).await;
}

#[tokio::test]
async fn a_server_not_up_yet_is_waited_for() {
    let addr = unused_addr();
    let client = ReconnectingClient::<CalculatorRef>::connect(addr, options());
    let mut states = client.watch_state();
    state_until(&mut states, "two failed attempts", |s| s.attempts() >= 2).await;
    let early = disconnected(client.root_within(Duration::from_millis(20)).await);
    let expected = format!("still not connected to {addr} after 20ms");
    assert!(early.contains(&expected), "{early}");

    let (_server, _probe) = serve_on(addr, 3).await;
    let calc = client
        .root_within(PATIENCE)
        .await
        .expect("connected at last");
    assert_serves(&calc, 3).await;
}

#[tokio::test]
async fn close_stops_the_task_and_the_connection() {
    let (server, _probe) = TestServer::calc(4).await;
    let client = ReconnectingClient::<CalculatorRef>::connect(server.addr, options());
    let calc = client.root_within(PATIENCE).await.unwrap();
    let states = client.watch_state();
    let other = client.clone();

    client.close();
    assert!(client.state().is_closed());
    assert!(disconnected(other.root()).contains("closed"));
    assert!(disconnected(other.root_within(PATIENCE).await).contains("closed"));
    disconnected(within("a call after close", calc.calculate(1, 1)).await);
    drop((client, other));
    task_ends(states).await;
    server.stop().await;
}

#[tokio::test]
async fn dropping_the_client_stops_its_task_when_connected_or_not() {
    let (server, _probe) = TestServer::calc(5).await;
    let client = ReconnectingClient::<CalculatorRef>::connect(server.addr, options());
    let calc = client.root_within(PATIENCE).await.unwrap();
    let states = client.watch_state();
    drop(client);
    task_ends(states).await;
    let reason = disconnected(within("a call after drop", calc.calculate(1, 1)).await);
    assert!(reason.contains("closed"), "{reason}");
    server.stop().await;

    // Dropped while trying to connect (the server is gone now).
    let client = ReconnectingClient::<CalculatorRef>::connect(unused_addr(), options());
    let mut states = client.watch_state();
    state_until(&mut states, "a failed attempt", |s| s.attempts() >= 1).await;
    drop(client);
    task_ends(states).await;
}

/// An address nothing listens on (a port bound, then let go).
fn unused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn over_tls_and_by_sturdy_url_the_client_reconnects_too() {
    let identity = Identity::generate(&["localhost"]).expect("an identity");
    let fingerprint = identity.fingerprint();
    let secret = rpc_core::SturdyUrl::new_secret().unwrap();
    // A TLS server with `id` on `addr`, its calculator also registered under `secret`.
    let start = |addr: SocketAddr, id: u32| {
        let (identity, secret) = (identity.clone(), secret.clone());
        async move {
            let (root, _) = Calc::root(id);
            let server = Server::bind(addr, root.clone()).await.expect("bind");
            let server = server.with_tls(ServerTls::new(identity)).expect("tls");
            let url = server
                .register_with_secret(root, &secret)
                .expect("register");
            (TestServer::serve(server), url)
        }
    };
    let (first, url) = start("127.0.0.1:0".parse().unwrap(), 6).await;
    let addr = first.addr;
    let tls = ClientTls::pinned(fingerprint);
    let by_tls = ReconnectingClient::<CalculatorRef>::connect_tls(addr, tls, options());
    let by_url =
        ReconnectingClient::<CalculatorRef>::connect_url(&url.to_string(), options()).unwrap();
    for client in [&by_tls, &by_url] {
        let calc = client.root_within(PATIENCE).await.expect("connected");
        assert!(calc.peer().unwrap().is_encrypted());
        assert_serves(&calc, 6).await;
    }
    let mut watching = [by_tls.watch_state(), by_url.watch_state()];
    // This time the server stops gracefully: it closes its connections itself.
    first.stop().await;
    for states in &mut watching {
        state_until(states, "a failed attempt", |s| s.attempts() >= 1).await;
    }

    let (_second, _) = start(addr, 7).await;
    for (client, states) in [&by_tls, &by_url].into_iter().zip(&mut watching) {
        state_until(states, "the reconnection", ConnectionState::is_connected).await;
        assert_serves(&client.root().unwrap(), 7).await;
    }
}

#[test]
fn a_bad_url_is_refused_at_once() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let error = ReconnectingClient::<CalculatorRef>::connect_url("http://x", options())
        .expect_err("not a pbrs URL");
    assert!(matches!(error, CallError::InvalidUrl { .. }), "{error}");
}
