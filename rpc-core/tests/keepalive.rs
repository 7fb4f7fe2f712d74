//! Keepalive: a peer that stops answering is detected within interval + timeout, and a
//! healthy idle connection is kept.

mod common;

use std::time::{Duration, Instant};

use common::{frame, hello_payload, within};
use rpc_core::protocol::PROTOCOL_VERSION;
use rpc_core::{CallError, Client, Config, Server, remote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Something to call.
#[remote]
pub trait Echo {
    /// Returns `n`.
    async fn remote_echo(&self, n: u64) -> u64;
    /// Computes (sleeps, without awaiting) for `ms` milliseconds.
    async fn remote_compute(&self, ms: u64) -> u64;
}

struct E;

impl Echo for E {
    async fn remote_echo(&self, n: u64) -> u64 {
        n
    }

    async fn remote_compute(&self, ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_detected() {
    // A "server" that completes the handshake and then neither reads nor writes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let frozen = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(&frame(&hello_payload(PROTOCOL_VERSION)))
            .await
            .unwrap();
        let mut hello = [0u8; 12];
        stream.read_exact(&mut hello).await.unwrap();
        // Keep the socket open, unread, until the test ends.
        std::future::pending::<()>().await;
        drop(stream);
    });

    let interval = Duration::from_millis(100);
    let timeout = Duration::from_millis(100);
    let config = Config::default().keepalive(interval, timeout);
    let client = within("connect", Client::connect_with(addr, config))
        .await
        .unwrap();
    let echo: EchoRef = client.root().await.unwrap();
    let started = Instant::now();
    let pending = tokio::spawn(echo.echo(1));

    within("the keepalive to give up", client.disconnected()).await;
    let detected = started.elapsed();
    println!("detected a silent peer after {detected:?} (interval + timeout = 200ms)");
    let reason = client.peer().disconnect_reason().unwrap();
    assert!(reason.contains("keepalive"), "{reason}");
    let result = within("the pending call", pending).await.unwrap();
    assert!(
        matches!(result, Err(CallError::Disconnected { .. })),
        "{result:?}"
    );
    frozen.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_idle_connection_is_kept() {
    let config = Config::default().keepalive(Duration::from_millis(20), Duration::from_millis(200));
    let server = Server::bind("127.0.0.1:0", EchoRef::new(E))
        .await
        .unwrap()
        .with_config(config.clone());
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());
    let client = within("connect", Client::connect_with(addr, config))
        .await
        .unwrap();
    let echo: EchoRef = client.root().await.unwrap();
    // Let many keepalive rounds pass with no calls at all: nothing to wait for but time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(client.is_connected());
    assert_eq!(echo.echo(5).await.unwrap(), 5);
    serving.abort();
}

/// A server on a `current_thread` runtime whose handler computes, without awaiting, for longer
/// than its keepalive's interval and timeout together: its thread (the keepalive's too) is
/// held all that time, but the call came in and its answer goes out, so the peer is not silent
/// and the connection is kept. The client, which has no keepalive of its own, then calls for
/// several keepalive rounds, every call answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_long_handler_on_a_current_thread_server_does_not_make_its_peer_silent() {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let config =
                Config::default().keepalive(Duration::from_millis(100), Duration::from_millis(100));
            let server = Server::bind("127.0.0.1:0", EchoRef::new(E))
                .await
                .unwrap()
                .with_config(config);
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run_until(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
    });
    let addr = within("the server's address", addr_rx).await.unwrap();
    let client = within(
        "connect",
        Client::connect_with(addr, Config::default().no_keepalive()),
    )
    .await
    .unwrap();
    let echo: EchoRef = client.root().await.unwrap();
    assert_eq!(
        within("the long call", echo.compute(400)).await.unwrap(),
        400
    );
    // The server's keepalive, due while the handler ran, acts right after it: calls for five of
    // its intervals, so that a connection it wrongly found silent would be seen closed.
    let watched = Instant::now();
    let mut n = 0;
    while watched.elapsed() < Duration::from_millis(500) {
        n += 1;
        let answer = within("a call after the long one", echo.echo(n)).await;
        assert_eq!(
            answer.ok(),
            Some(n),
            "call {n} after the long handler: {:?}",
            client.peer().disconnect_reason()
        );
    }
    assert!(client.is_connected());
    drop((echo, client));
    stop_tx.send(()).unwrap();
    within(
        "the server thread",
        tokio::task::spawn_blocking(move || server_thread.join()),
    )
    .await
    .unwrap()
    .unwrap();
}
