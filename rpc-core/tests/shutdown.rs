//! Disconnects and graceful shutdown over loopback TCP.

mod common;

use common::on_both_runtimes;

use std::time::Duration;

use common::*;
use rpc_core::{CallError, Client, Config, RemoteErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[track_caller]
fn assert_disconnected<T: std::fmt::Debug>(result: Result<T, CallError>) {
    match result {
        Err(e @ CallError::Disconnected { .. }) => assert!(e.is_disconnected()),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// Calls whose handlers never finish fail with `Disconnected` when the server goes away
/// (after its short shutdown grace); later calls on the same proxy fail the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_calls_fail_when_the_server_shuts_down() {
    let config = Config::default().shutdown_grace(Duration::from_millis(200));
    let (mut server, mut probe) = TestServer::calc_with(1, config).await;
    let (client, calc) = server.client().await;

    // Spawned: a call is sent when its future is first polled.
    let pending: Vec<_> = (0..3).map(|tag| tokio::spawn(calc.wait(tag))).collect();
    assert_eq!(probe.started(3).await, vec![0, 1, 2]);

    let run = server.begin_shutdown();
    let results = within(
        "the pending calls to fail",
        futures::future::join_all(pending),
    )
    .await;
    for result in results {
        assert_disconnected(result.unwrap());
    }
    within("the client to notice", client.disconnected()).await;
    assert!(!client.is_connected());

    // The handlers were dropped, not left running.
    let mut dropped = Vec::new();
    for _ in 0..3 {
        match probe.next().await {
            Event::Dropped(tag) => dropped.push(tag),
            other => panic!("expected Dropped, got {other:?}"),
        }
    }
    dropped.sort_unstable();
    assert_eq!(dropped, vec![0, 1, 2]);

    // Later calls fail too, asynchronously, whether typed or untyped.
    let later = calc.calculate(1, 2);
    assert_disconnected(within("a later call", later).await);
    assert_disconnected(within("a later call", calc.wait(7)).await);
    assert_disconnected(within("an untyped call", client.call_remote::<_, ()>("nope", ())).await);
    assert_disconnected(client.root::<CalculatorRef>().await);

    within("run_until to return", run).await.unwrap();
}

/// A server that dies abruptly (its task aborted: every connection dropped) fails the calls
/// in flight with `Disconnected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_calls_fail_when_the_server_dies() {
    let (mut server, mut probe) = TestServer::calc(2).await;
    let (client, calc) = server.client().await;

    let pending = tokio::spawn(calc.wait(1));
    assert_eq!(probe.started(1).await, vec![1]);
    let run = server.begin_shutdown_abruptly();
    assert_disconnected(within("the pending call to fail", pending).await.unwrap());
    // The handler does not outlive its connection.
    assert_eq!(probe.next().await, Event::Dropped(1));
    within("the client to notice", client.disconnected()).await;
    assert_disconnected(within("a later call", calc.calculate(1, 1)).await);
    assert!(
        within("the server task", run)
            .await
            .unwrap_err()
            .is_cancelled()
    );
}

on_both_runtimes! {
    /// Closing the client fails its pending calls and drops their handlers at the server.
    async fn closing_the_client_fails_pending_calls_and_cancels_their_handlers() {
        let (server, mut probe) = TestServer::calc(3).await;
        let (client, calc) = server.client().await;

        let pending = tokio::spawn(calc.wait(1));
        assert_eq!(probe.started(1).await, vec![1]);
        client.close();
        assert_disconnected(within("the pending call to fail", pending).await.unwrap());
        assert_eq!(probe.next().await, Event::Dropped(1));
        assert_disconnected(within("a later call", calc.calculate(1, 1)).await);

        // The server is fine.
        let (client2, calc2) = server.client().await;
        assert_serves(&calc2, 3).await;
        drop(client2);
        server.stop().await;
    }
}

/// Dropping every handle to a client closes its connection: the server drops its handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_closes_the_connection() {
    let (server, mut probe) = TestServer::calc(4).await;
    let (client, calc) = server.client().await;

    // A call whose future is kept alive in a task keeps the connection open...
    let call = calc.wait(1);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn(async move { tx.send(call.await).ok() });
    assert_eq!(probe.started(1).await, vec![1]);
    let disconnected = client.disconnected();
    drop((client, calc));
    // ...until it is dropped too.
    waiter.abort();
    within("the connection to close", disconnected).await;
    assert_eq!(probe.next().await, Event::Dropped(1));
    assert!(rx.await.is_err(), "the call was aborted, not answered");
    server.stop().await;
}

on_both_runtimes! {
    /// Graceful shutdown: running calls finish and are answered; new calls are refused with
    /// `ShuttingDown`; new connections are refused; `run_until` returns.
    async fn graceful_shutdown_answers_the_calls_in_flight() {
        let (mut server, mut probe) = TestServer::calc(5).await;
        let addr = server.addr;
        let (client, calc) = server.client().await;
        let (other_client, other_calc) = server.client().await;

        // Spawned: a call is sent when its future is first polled.
        let running: Vec<_> = (0..3).map(|tag| tokio::spawn(calc.wait(tag))).collect();
        let other_running = tokio::spawn(other_calc.wait(10));
        assert_eq!(probe.started(4).await, vec![0, 1, 2, 10]);

        let run = server.begin_shutdown();

        // Once the server drains, new calls are refused (before that they are answered).
        let refused = within("the server to start draining", async {
            loop {
                match calc.calculate(1, 1).await {
                    Ok(answer) => assert_eq!(answer, (2, 5)),
                    Err(e) => break e,
                }
            }
        })
        .await;
        match &refused {
            CallError::Remote {
                kind: RemoteErrorKind::ShuttingDown,
                ..
            } => {}
            other => panic!("expected ShuttingDown, got {other:?}"),
        }
        match within("a new call", calc.wait(99)).await {
            Err(CallError::Remote {
                kind: RemoteErrorKind::ShuttingDown,
                ..
            })
            | Err(CallError::Disconnected { .. }) => {}
            other => panic!("expected ShuttingDown or Disconnected, got {other:?}"),
        }
        // The listener is gone.
        assert!(within("connect", Client::connect(addr)).await.is_err());
        // Nothing was cut short yet.
        assert!(client.is_connected() && other_client.is_connected());

        probe.open_gate();
        let answers = within("the running calls", futures::future::join_all(running)).await;
        let answers: Vec<u64> = answers.into_iter().map(|a| a.unwrap().unwrap()).collect();
        assert_eq!(answers, vec![0, 1, 2]);
        assert_eq!(within("a call", other_running).await.unwrap().unwrap(), 10);

        within("run_until to return", run).await.unwrap();
        within("the client to be disconnected", client.disconnected()).await;
        within("the client to be disconnected", other_client.disconnected()).await;
        assert_disconnected(within("a call after shutdown", calc.calculate(1, 1)).await);
    }
}

on_both_runtimes! {
    /// Graceful shutdown delivers an answer in flight even when it is larger than what the
    /// socket takes in one write.
    async fn graceful_shutdown_delivers_large_answers_in_flight() {
        // Far more than a loopback socket buffers (4 MiB at most by default).
        const LEN: u32 = 16 << 20;
        let config = Config::default().max_frame_length(64 << 20);
        let (mut server, mut probe) = TestServer::calc_with(7, config.clone()).await;
        let client = within("connect", Client::connect_with(server.addr, config))
            .await
            .unwrap();
        let calc: CalculatorRef = client.root().await.unwrap();

        let large = tokio::spawn(calc.wait_then_blob(1, LEN));
        assert_eq!(probe.started(1).await, vec![1]);
        let run = server.begin_shutdown();
        let refused = within("the server to start draining", async {
            loop {
                if let Err(e) = calc.calculate(1, 1).await {
                    break e;
                }
            }
        })
        .await;
        assert_eq!(refused.remote_kind(), Some(RemoteErrorKind::ShuttingDown));

        probe.open_gate();
        match within("the large answer", large).await.unwrap() {
            Ok(blob) => assert!(blob.len() == LEN as usize && blob.iter().all(|&b| b == 0xAB)),
            Err(e) => panic!("the answer of a call that ran to completion was lost: {e}"),
        }
        within("run_until to return", run).await.unwrap();
        within("the client to be disconnected", client.disconnected()).await;
    }
}

/// Shutdown with idle connections and a peer stuck in its handshake returns promptly: it
/// does not wait for the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_idle_or_handshaking_peers() {
    let config = Config::default().handshake_timeout(Duration::from_secs(3600));
    let (server, _probe) = TestServer::calc_with(6, config).await;
    let (client, calc) = server.client().await;
    assert_serves(&calc, 6).await;
    let mut silent = RawPeer::connect(server.addr).await;
    // The server's hello shows the connection was accepted.
    assert_eq!(
        silent.read_frame().await,
        hello_payload(rpc_core::protocol::PROTOCOL_VERSION)
    );

    server.stop().await;
    within("the client to be disconnected", client.disconnected()).await;
    silent.expect_closed().await;
}

/// A call being dispatched while its runtime shuts down must not deadlock the connection's
/// reader. (A `#[tokio::main]` server that gets a call during its shutdown would otherwise
/// leave a thread hung on a mutex.)
///
/// The call blocks the server's reader thread at its first poll. Meanwhile the runtime shuts
/// down (a sentinel task being dropped shows it has). Then the call is released, returns
/// `Pending`, and the reader spawns it as a task on the closed runtime, which drops it on the
/// spot. The reader must then finish normally: the server drops its end of the transport.
#[test]
fn runtime_shutdown_while_a_call_is_dispatched_does_not_deadlock() {
    struct OnDrop(std::sync::mpsc::Sender<()>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (root, probe) = Calc::root(8);
    let (sentinel_tx, sentinel_rx) = std::sync::mpsc::channel();
    let (mut peer, server_io) = tokio::io::duplex(64 * 1024);
    runtime.block_on(async {
        tokio::spawn(rpc_core::serve_connection(
            server_io,
            root,
            Config::default(),
            "in-memory test peer",
        ));
        let sentinel = OnDrop(sentinel_tx);
        tokio::spawn(async move {
            let _sentinel = sentinel;
            std::future::pending::<()>().await
        });
        let mut bytes = frame(&hello_payload(rpc_core::protocol::PROTOCOL_VERSION));
        bytes.extend(frame(&call_payload(
            1,
            rpc_core::protocol::ROOT_OBJECT,
            "block_first_poll",
            (1u64, true),
        )));
        peer.write_all(&bytes).await.unwrap();
    });

    assert_eq!(
        probe.blocking_first_poll(),
        Some(1),
        "the call reached its handler"
    );
    runtime.shutdown_background();
    sentinel_rx
        .recv_timeout(PATIENCE)
        .expect("the runtime drops its tasks on shutdown");
    probe.release_blocked();

    // The transport is runtime-agnostic: read our end on a runtime of our own.
    let reader = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    reader.block_on(async {
        within(
            "the server's reader to finish and drop the transport",
            async {
                let mut received = Vec::new();
                let _ = peer.read_to_end(&mut received).await;
            },
        )
        .await
    });
}
