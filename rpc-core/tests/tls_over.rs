//! Everything works the same over TLS: references both ways, keepalive (through a relay the
//! test can freeze), frames near the limit, many calls in flight, and the blocking facade
//! with `connect_tls` and `connect_url` from a plain thread.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::tls::{SecureRef, calc_server, connect, secure_server, self_signed};
use common::{CalculatorRef, ListenerRef, Recorder, thousand_echoes, within};
use rpc_core::tls::{ClientTls, ServerTls};
use rpc_core::{CallError, Client, Config, blocking};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A client passes an object to the server, which calls it back; the server hands an object
/// to the client, which calls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_travel_both_ways() {
    let identity = self_signed();
    let pin = ClientTls::pinned(identity.fingerprint());
    let server = secure_server(ServerTls::new(identity)).await;
    let client = connect(server.addr, &pin).await.unwrap();
    let root: SecureRef = client.root().await.unwrap();

    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let listener = ListenerRef::new(Recorder { seen: seen_tx });
    let answer = within("a call back", root.call_back(listener, 21)).await;
    assert_eq!(answer.unwrap(), Ok(42));
    assert_eq!(within("the listener's call", seen.recv()).await, Some(21));

    let thing = within("make", root.make(7)).await.unwrap();
    assert_eq!(within("serial", thing.serial()).await.unwrap(), 7);

    client.close();
    server.stop().await;
}

/// Frames near the frame limit cross TLS (many records each) both ways; a frame over it is
/// refused and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_near_the_limit() {
    const LIMIT: usize = 256 * 1024;
    let config = Config::default().max_frame_length(LIMIT);
    let identity = self_signed();
    let pin = ClientTls::pinned(identity.fingerprint());
    let (server, _) = calc_server(identity, config.clone(), 0).await;
    let client = within(
        "connect",
        Client::connect_tls_with(&server.addr.to_string(), &pin, config),
    )
    .await
    .unwrap();
    let calc: CalculatorRef = client.root().await.unwrap();

    let near = LIMIT - 100;
    let sent: Vec<u8> = (0..near).map(|i| (i % 251) as u8).collect();
    assert_eq!(within("a large call", calc.size(sent)).await.unwrap(), near);
    let blob = within("a large answer", calc.blob(near as u32))
        .await
        .unwrap();
    assert_eq!(blob.len(), near);
    assert!(blob.iter().all(|&b| b == 0xAB));

    let over = within("a call over the limit", calc.size(vec![0; LIMIT])).await;
    assert!(over.is_err(), "a frame over the limit was sent: {over:?}");
    assert_eq!(
        within("a call", calc.calculate(1, 2)).await.unwrap(),
        (3, 0)
    );
    client.close();
    server.stop().await;
}

/// A thousand calls in flight at once over one TLS connection, each answered to its caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight() {
    let identity = self_signed();
    let pin = ClientTls::pinned(identity.fingerprint());
    let (server, _) = calc_server(identity, Config::default(), 0).await;
    let client = connect(server.addr, &pin).await.unwrap();
    let calc: CalculatorRef = client.root().await.unwrap();
    thousand_echoes(&calc).await;
    client.close();
    server.stop().await;
}

/// The blocking facade from a thread without a runtime: `connect_tls` to the root and
/// `connect_url` to a registered object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_facade_over_tls() {
    let identity = self_signed();
    let pin = ClientTls::pinned(identity.fingerprint());
    let (server, urls) = calc_server(identity, Config::default(), 1).await;
    let addr = server.addr.to_string();
    let url = urls[0].to_string();
    let thread = std::thread::spawn(move || {
        let client = blocking::Client::connect_tls(&addr, &pin).expect("connect_tls");
        assert!(client.inner().peer().is_encrypted());
        let root: CalculatorRef = client.root().expect("root");
        assert_eq!(client.call(root.calculate(2, 2)).expect("a call"), (4, 0));
        let (by_url, calc) =
            blocking::Client::connect_url::<CalculatorRef>(&url).expect("connect_url");
        assert_eq!(by_url.call(calc.calculate(2, 2)).expect("a call"), (4, 1));
    });
    within(
        "the blocking thread",
        tokio::task::spawn_blocking(move || thread.join()),
    )
    .await
    .unwrap()
    .expect("the blocking thread panicked");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Keepalive, through a relay.
// ---------------------------------------------------------------------------------------------

/// Relays one TCP connection to a server, counting the chunks the server sends; once frozen,
/// it relays nothing more but keeps both sockets open (a frozen peer). Stops when dropped.
struct Relay {
    addr: SocketAddr,
    from_server: watch::Receiver<usize>,
    frozen: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (counter, from_server) = watch::channel(0);
        let frozen = watch::Sender::new(false);
        let (to_client, to_server) = (frozen.subscribe(), frozen.subscribe());
        let task = tokio::spawn(async move {
            let (client, _) = listener.accept().await.expect("relay accept");
            let server = TcpStream::connect(upstream).await.expect("relay connect");
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pump(client_read, server_write, to_server, None),
                pump(server_read, client_write, to_client, Some(counter)),
            );
        });
        Relay {
            addr,
            from_server,
            frozen,
            task,
        }
    }

    /// Waits until the server has sent `more` chunks beyond those counted now.
    async fn server_sends(&mut self, more: usize) {
        let target = *self.from_server.borrow_and_update() + more;
        within(
            "chunks from the server",
            self.from_server.wait_for(|&n| n >= target),
        )
        .await
        .expect("the relay stopped");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either closes; once `frozen`, holds everything, forever.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    counter: Option<watch::Sender<usize>>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = frozen.wait_for(|&f| f) => break,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *frozen.borrow() || to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        if let Some(counter) = &counter {
            counter.send_modify(|chunks| *chunks += 1);
        }
    }
    // Frozen (or the other side went away): keep the sockets open until the relay stops.
    std::future::pending::<()>().await;
    drop((from, to));
}

/// A client of a TLS calculator server through a relay, with `config`.
async fn through_relay(config: Config) -> (common::TestServer, Relay, Client, CalculatorRef) {
    let identity = self_signed();
    let pin = ClientTls::pinned(identity.fingerprint());
    let (server, _) = calc_server(identity, Config::default(), 0).await;
    let relay = Relay::start(server.addr).await;
    let client = within(
        "connect",
        Client::connect_tls_with(&relay.addr.to_string(), &pin, config),
    )
    .await
    .unwrap();
    let calc: CalculatorRef = client.root().await.unwrap();
    assert_eq!(
        within("a call", calc.calculate(1, 1)).await.unwrap(),
        (2, 0)
    );
    (server, relay, client, calc)
}

/// An idle TLS connection with keepalive is pinged and answered, round after round, and
/// stays up: each round outlives the keepalive's patience, so the answers are heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_keeps_an_idle_tls_connection() {
    let patience = Duration::from_millis(1500);
    let config = Config::default().keepalive(Duration::from_millis(20), patience);
    let (server, mut relay, client, calc) = through_relay(config).await;
    let started = tokio::time::Instant::now();
    let mut rounds = 0;
    // Twice the patience: without answers heard, the client would have given up by then.
    while started.elapsed() < 2 * patience {
        // No calls: all the server sends now answers the client's pings.
        relay.server_sends(1).await;
        rounds += 1;
    }
    println!("{rounds} keepalive answers in {:?}", started.elapsed());
    assert!(
        client.is_connected(),
        "{:?}",
        client.peer().disconnect_reason()
    );
    assert_eq!(
        within("a call", calc.calculate(2, 3)).await.unwrap(),
        (5, 0)
    );
    client.close();
    server.stop().await;
}

/// A TLS peer that goes silent is detected by the keepalive; the pending call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_detects_a_silent_tls_peer() {
    let config = Config::default().keepalive(Duration::from_millis(100), Duration::from_secs(1));
    let (server, relay, client, calc) = through_relay(config).await;
    relay.frozen.send_replace(true);
    let pending = tokio::spawn(calc.calculate(4, 5));
    within("the keepalive to give up", client.disconnected()).await;
    let reason = client.peer().disconnect_reason().unwrap();
    assert!(reason.contains("keepalive"), "{reason}");
    let result = within("the pending call", pending).await.unwrap();
    assert!(
        matches!(result, Err(CallError::Disconnected { .. })),
        "{result:?}"
    );
    drop(relay);
    server.stop().await;
}
