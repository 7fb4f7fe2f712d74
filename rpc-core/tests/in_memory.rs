//! The same calculator over the in-memory transport: `tokio::io::duplex` with
//! `serve_connection` on one end and `Client::over` on the other.

mod common;

use common::*;
use rpc_core::protocol::PROTOCOL_VERSION;
use rpc_core::{CallError, Client, Config, RemoteErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// One in-memory connection: the client, the root proxy, the probe and the serving task
/// (aborted if the test fails before it ends).
struct InMemory {
    client: Option<Client>,
    calc: Option<CalculatorRef>,
    probe: Probe,
    server: Option<JoinHandle<Result<(), CallError>>>,
}

impl InMemory {
    async fn start(id: u32) -> InMemory {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (root, probe) = Calc::root(id);
        let server = tokio::spawn(rpc_core::serve_connection(
            server_io,
            root,
            Config::default(),
            "in-memory test peer",
        ));
        let client = within(
            "the in-memory handshake",
            Client::over(client_io, Config::default()),
        )
        .await
        .expect("Client::over");
        let calc = client.root().await.unwrap();
        InMemory {
            client: Some(client),
            calc: Some(calc),
            probe,
            server: Some(server),
        }
    }

    fn calc(&self) -> &CalculatorRef {
        self.calc.as_ref().unwrap()
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Drops the client side and waits for `serve_connection` to return.
    async fn finish(mut self) {
        self.client = None;
        self.calc = None;
        let server = self.server.take().unwrap();
        within("serve_connection to return", server)
            .await
            .unwrap()
            .expect("serve_connection failed");
    }
}

impl Drop for InMemory {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_in_memory_transport() {
    let mem = InMemory::start(21).await;
    assert_serves(mem.calc(), 21).await;
    assert_eq!(
        within("a call", mem.calc().calculate(-5, 3)).await.unwrap(),
        (-2, 21)
    );
    let untyped = mem
        .client()
        .call_remote::<_, (i64, u32)>("calculate", (4i64, 4i64));
    assert_eq!(within("a call", untyped).await.unwrap(), (8, 21));
    assert_eq!(
        within("a call", mem.calc().size(vec![1; 100_000]))
            .await
            .unwrap(),
        100_000
    );
    assert_eq!(
        within("a call", mem.calc().blob(200_000)).await.unwrap(),
        vec![0xAB; 200_000]
    );
    // Totalled with join_all, like the TCP demo.
    let calls = (0..10).map(|i| mem.calc().calculate(i, i));
    let total: i64 = within("ten calls", futures::future::try_join_all(calls))
        .await
        .unwrap()
        .into_iter()
        .map(|(sum, _)| sum)
        .sum();
    assert_eq!(total, 90);
    mem.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_over_the_in_memory_transport() {
    let mem = InMemory::start(22).await;
    thousand_echoes(mem.calc()).await;
    assert_serves(mem.calc(), 22).await;
    mem.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_over_the_in_memory_transport() {
    let mem = InMemory::start(23).await;
    let nope = mem.client().call_remote::<_, ()>("nope", ());
    assert_remote(within("a call", nope).await, RemoteErrorKind::NoSuchMethod);
    assert_serves(mem.calc(), 23).await;
    let bad = mem
        .client()
        .call_remote::<_, (i64, u32)>("calculate", ("not a number".to_string(),));
    assert_remote(within("a call", bad).await, RemoteErrorKind::BadArguments);
    assert_remote(
        within("a call", mem.calc().panic(true)).await,
        RemoteErrorKind::Panicked,
    );
    assert_serves(mem.calc(), 23).await;
    mem.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_call_is_cancelled_over_the_in_memory_transport() {
    let mut mem = InMemory::start(24).await;
    // Spawned: a call is sent when its future is first polled; aborting the task drops it.
    let call = tokio::spawn(mem.calc().wait(1));
    assert_eq!(mem.probe.started(1).await, vec![1]);
    call.abort();
    assert_eq!(mem.probe.next().await, Event::Dropped(1));

    // Cancelled inside a select! as well: the losing branch's call is dropped. The winning
    // branch calls only once the losing call's handler has started: had both calls gone out
    // at once, the server could answer the second (read in a later burst, run on the other
    // worker) before the first's handler started, and the cancel would then stop that handler
    // before it ever ran.
    let calc = mem.calc().clone();
    let probe = &mut mem.probe;
    let winner = within("select", async {
        tokio::select! {
            r = calc.wait(2) => panic!("the gate is closed, yet wait returned {r:?}"),
            r = async {
                assert_eq!(probe.started(1).await, vec![2]);
                calc.calculate(1, 1).await
            } => r,
        }
    })
    .await;
    assert_eq!(winner.unwrap(), (2, 24));
    drop(calc);
    assert_eq!(mem.probe.next().await, Event::Dropped(2));

    let late = tokio::spawn(mem.calc().wait(3));
    assert_eq!(mem.probe.started(1).await, vec![3]);
    mem.probe.open_gate();
    assert_eq!(within("a call", late).await.unwrap().unwrap(), 3);
    assert_eq!(mem.probe.next().await, Event::Finished(3));
    assert_serves(mem.calc(), 24).await;
    mem.finish().await;
}

/// The serving side going away fails the client's pending calls with `Disconnected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_calls_fail_when_the_in_memory_server_goes_away() {
    let mut mem = InMemory::start(25).await;
    let pending = tokio::spawn(mem.calc().wait(1));
    assert_eq!(mem.probe.started(1).await, vec![1]);
    let server = mem.server.take().unwrap();
    server.abort();
    match within("the pending call to fail", pending).await.unwrap() {
        Err(CallError::Disconnected { .. }) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // The handler does not outlive its connection.
    assert_eq!(mem.probe.next().await, Event::Dropped(1));
    within("the client to notice", mem.client().disconnected()).await;
    match within("a later call", mem.calc().calculate(1, 1)).await {
        Err(CallError::Disconnected { .. }) => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(
        within("the server task", server)
            .await
            .unwrap_err()
            .is_cancelled()
    );
}

/// `serve_connection` returns an error when the peer is not a pbrs peer, and `Client::over`
/// refuses a peer of another version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_handshake_failures() {
    // A server end whose peer speaks HTTP.
    let (mut peer, server_io) = tokio::io::duplex(1024);
    let (root, _probe) = Calc::root(26);
    let server = tokio::spawn(rpc_core::serve_connection(
        server_io,
        root,
        Config::default(),
        "http peer",
    ));
    peer.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    match within("serve_connection", server).await.unwrap() {
        Err(CallError::Protocol { .. }) => {}
        other => panic!("expected a Protocol error, got {other:?}"),
    }

    // A client end whose peer speaks version 999.
    let (mut peer, client_io) = tokio::io::duplex(1024);
    let fake = tokio::spawn(async move {
        peer.write_all(&frame(&hello_payload(999))).await.unwrap();
        let mut rest = Vec::new();
        let _ = peer.read_to_end(&mut rest).await;
        rest
    });
    match within("Client::over", Client::over(client_io, Config::default())).await {
        Err(CallError::Protocol { message }) => assert!(message.contains("version"), "{message}"),
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    let sent = within("the fake peer", fake).await.unwrap();
    assert_eq!(sent, frame(&hello_payload(PROTOCOL_VERSION)));
}
