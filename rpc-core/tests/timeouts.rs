//! What a caller sees when something does not happen in time: every call has a deadline
//! (10 s unless set), so a peer that stops answering holds a caller that long at most; and
//! every timeout says which it was ([`TimeoutKind`]) in words.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::self_signed;
use common::{CalculatorRef, RawServer, TestServer, within};
use rpc_core::protocol::Message;
use rpc_core::tls::ClientTls;
use rpc_core::{CallError, Client, Config, RemoteRef, Server, TimeoutKind, remote};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The short default deadline these tests configure, to be quick.
const DEADLINE: Duration = Duration::from_millis(300);

#[test]
fn the_default_call_deadline_is_10_s_and_can_be_turned_off() {
    assert_eq!(Config::DEFAULT_CALL_TIMEOUT, Duration::from_secs(10));
    assert_eq!(
        Config::default().default_call_timeout,
        Some(Duration::from_secs(10))
    );
    let off = Config::default().no_default_call_timeout();
    assert_eq!(off.default_call_timeout, None);
}

/// The next call the raw server receives (keepalive is far off): its id and deadline.
async fn next_call(raw: &mut common::RawPeer) -> (u64, Option<u64>) {
    match raw.read_message().await {
        (
            Message::Call {
                id, deadline_ms, ..
            },
            _,
        ) => (id, deadline_ms),
        other => panic!("expected a call, got {other:?}"),
    }
}

/// A peer that takes the call and never answers (a stopped process, a dead link): the caller
/// gets a `Call` timeout at the connection's default deadline, and cancels the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_times_out_at_the_default_deadline() {
    let (client, mut raw) =
        RawServer::with_client(Config::default().default_call_timeout(DEADLINE)).await;
    let calc: CalculatorRef = client.root().await.unwrap();
    let started = Instant::now();
    let call = tokio::spawn(calc.calculate(1, 2));
    let (id, deadline_ms) = next_call(&mut raw).await;
    assert_eq!(deadline_ms, Some(300), "the deadline travels with the call");

    let e = within("the deadline", call).await.unwrap().unwrap_err();
    assert!(started.elapsed() >= DEADLINE, "{:?}", started.elapsed());
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call), "{e}");
    assert!(matches!(e, CallError::Timeout { after, .. } if after == DEADLINE));
    assert!(
        e.to_string()
            .starts_with("the call timed out after 300ms: "),
        "{e}"
    );
    match raw.read_message().await {
        (Message::Cancel { id: cancelled }, _) => assert_eq!(cancelled, id),
        other => panic!("expected the call's cancel, got {other:?}"),
    }
    assert!(client.is_connected(), "a timeout leaves the connection up");
    client.close();
    raw.expect_closed().await;
}

/// A call made while another waits for its answer (a pipeline) does not read the clock for its
/// deadline: the connection's timer counts it from a little after the call's first poll, with
/// the others made meanwhile. Each still times out at its own deadline, never before it, and
/// not at the first call's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_made_while_others_wait_times_out_at_its_own_deadline() {
    let (client, mut raw) =
        RawServer::with_client(Config::default().default_call_timeout(DEADLINE)).await;
    let calc: CalculatorRef = client.root().await.unwrap();
    let first_started = Instant::now();
    let first = tokio::spawn(calc.calculate(1, 2));
    let (first_id, _) = next_call(&mut raw).await;
    // Well into the first call's deadline, so that a deadline counted from the first call's
    // (or from any time before the second call's first poll) would fail the second too early.
    tokio::time::sleep(DEADLINE / 2).await;
    let second_started = Instant::now();
    let second = tokio::spawn(calc.calculate(3, 4));
    let (second_id, deadline_ms) = next_call(&mut raw).await;
    assert_eq!(deadline_ms, Some(300));

    let e = within("the first deadline", first)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call), "{e}");
    assert!(first_started.elapsed() >= DEADLINE);
    let e = within("the second deadline", second)
        .await
        .unwrap()
        .unwrap_err();
    let took = second_started.elapsed();
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call), "{e}");
    assert!(
        took >= DEADLINE,
        "the second call timed out early: {took:?}"
    );
    // Both are cancelled at the callee, each when its own deadline passed.
    for id in [first_id, second_id] {
        match raw.read_message().await {
            (Message::Cancel { id: cancelled }, _) => assert_eq!(cancelled, id),
            other => panic!("expected the cancel of call {id}, got {other:?}"),
        }
    }
    client.close();
    raw.expect_closed().await;
}

/// `with_timeout` and `without_timeout` on a reference override the connection's default; the
/// default deadline goes on the wire as 10,000 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_sets_its_own_deadline_or_none() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let calc: CalculatorRef = client.root().await.unwrap();
    let call = tokio::spawn(calc.calculate(1, 2));
    assert_eq!(next_call(&mut raw).await.1, Some(10_000));
    call.abort();
    client.close();
    raw.expect_closed().await;

    let (client, mut raw) =
        RawServer::with_client(Config::default().default_call_timeout(DEADLINE)).await;
    let calc: CalculatorRef = client.root().await.unwrap();
    let patient = tokio::spawn(calc.without_timeout().calculate(1, 1));
    let (patient_id, deadline_ms) = next_call(&mut raw).await;
    assert_eq!(deadline_ms, None);
    let longer = tokio::spawn(calc.with_timeout(Duration::from_secs(60)).calculate(2, 2));
    assert_eq!(next_call(&mut raw).await.1, Some(60_000));
    // A call with the default deadline, made after the patient call went out, times out:
    // by then the patient call has outlived the default.
    // Its deadline is earlier than the 60 s one the connection's timer sleeps until: the
    // timer wakes for it (missed, the call would wait the 60 s).
    let started = Instant::now();
    let hasty = tokio::spawn(calc.calculate(3, 3));
    assert_eq!(next_call(&mut raw).await.1, Some(300));
    let e = within("the default deadline", hasty)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call));
    let waited = started.elapsed();
    assert!(
        (DEADLINE..Duration::from_secs(30)).contains(&waited),
        "{waited:?}"
    );
    raw.answer(patient_id, &(2i64, 0u32)).await;
    assert_eq!(
        within("the patient call", patient).await.unwrap().unwrap(),
        (2, 0)
    );
    longer.abort();
    client.close();
    raw.expect_closed().await;
}

/// `with_timeout(Duration::MAX)` works: the deadline (u64::MAX ms on the wire) is none at a
/// callee whose `Instant` cannot reach it, instead of an overflow in its reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_deadline_is_no_deadline() {
    let (server, _probe) = TestServer::calc(4).await;
    let (client, calc) = server.client().await;
    let endless = calc.with_timeout(Duration::MAX);
    assert_eq!(endless.calculate(1, 2).await.unwrap(), (3, 4));
    assert!(client.is_connected());
    drop((client, calc, endless));
    server.stop().await;
}

/// A listener that accepts one connection and never says a word; its task ends when the
/// client leaves.
async fn silent_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    (addr, silent)
}

/// A server that accepts but never greets: `Client::connect` gives up after the handshake
/// timeout, and over TLS the TLS handshake does; each error says which, and what to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_handshake_timeout_of_the_right_kind() {
    let config = Config::default().handshake_timeout(Duration::from_millis(200));

    let (addr, silent) = silent_server().await;
    let e = within("connect", Client::connect_with(addr, config.clone()))
        .await
        .unwrap_err();
    assert!(e.is_timeout() && !e.is_disconnected(), "{e}");
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Handshake), "{e}");
    assert!(matches!(e, CallError::Timeout { after, .. } if after == Duration::from_millis(200)));
    let text = e.to_string();
    assert!(
        text.starts_with("the pbrs handshake timed out after 200ms: "),
        "{text}"
    );
    assert!(text.contains("Config::handshake_timeout"), "{text}");
    within("the silent server to see the client leave", silent)
        .await
        .unwrap();

    let (addr, silent) = silent_server().await;
    let tls = ClientTls::pinned(self_signed().fingerprint());
    let e = within(
        "connect over TLS",
        Client::connect_tls_with(&addr.to_string(), &tls, config),
    )
    .await
    .unwrap_err();
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::TlsHandshake), "{e}");
    assert!(
        e.to_string()
            .starts_with("the TLS handshake timed out after 200ms: "),
        "{e}"
    );
    within("the silent server to see the client leave", silent)
        .await
        .unwrap();
}

/// Lives in each member of a room: hears who joins.
#[remote]
pub trait Listener {
    /// `name` joined the room.
    async fn remote_joined(&self, name: String);
}

/// A chat room: joining tells every member already there, as the `weblog` example does.
#[remote]
pub trait Room {
    /// Tells every listener that `name` joined, then adds `listener`; answers how many
    /// members heard it and how many did not answer in time (those are dropped).
    async fn remote_join(&self, name: String, listener: ListenerRef) -> (u32, u32);
}

#[derive(Default)]
struct Members(Mutex<Vec<ListenerRef>>);

impl Room for Arc<Members> {
    async fn remote_join(&self, name: String, listener: ListenerRef) -> (u32, u32) {
        let members = self.0.lock().unwrap().clone();
        // Each call has the server's default deadline: no `with_timeout` needed.
        let told = members.iter().map(|m| m.joined(name.clone()));
        let results = futures::future::join_all(told).await;
        let mut kept = Vec::new();
        let (mut heard, mut late) = (0, 0);
        for (member, result) in members.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    heard += 1;
                    kept.push(member);
                }
                // It did not answer in time: drop it.
                Err(e) if e.timeout_kind() == Some(TimeoutKind::Call) => late += 1,
                Err(e) => panic!("a member failed otherwise: {e}"),
            }
        }
        kept.push(listener);
        *self.0.lock().unwrap() = kept;
        (heard, late)
    }
}

/// A member's listener: reports what it hears.
struct Ears(tokio::sync::mpsc::UnboundedSender<String>);

impl Listener for Ears {
    async fn remote_joined(&self, name: String) {
        let _ = self.0.send(name);
    }
}

/// The first-contact report: with one member of a chat frozen (its process stopped), another
/// member's `join`, which calls every listener, took 50 s (no deadline; keepalive 30 s + 20 s).
/// With the default deadline it takes the deadline: the frozen member's call times out and the
/// room drops it, so the next join does not wait at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_holds_up_a_fan_out_for_the_deadline_only() {
    let room = Arc::new(Members::default());
    let config = Config::default().default_call_timeout(DEADLINE);
    let server = Server::bind("127.0.0.1:0", RoomRef::new(room))
        .await
        .unwrap()
        .with_config(config);
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // The member to freeze: its own single-threaded runtime on a thread of its own, which the
    // test then blocks, as SIGSTOP would stop its process: it reads and answers nothing.
    let (joined_tx, joined) = std::sync::mpsc::channel();
    let (thaw, thawed) = std::sync::mpsc::channel::<()>();
    let frozen = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = Client::connect(addr).await.unwrap();
            let room: RoomRef = client.root().await.unwrap();
            let (ears, _heard) = tokio::sync::mpsc::unbounded_channel();
            let answer = room
                .join("frozen".into(), ListenerRef::new(Ears(ears)))
                .await;
            joined_tx.send(answer.unwrap()).unwrap();
            // Frozen: this thread runs every task of the member's connection.
            let _ = thawed.recv();
            client.close();
        });
    });
    let first = tokio::task::spawn_blocking(move || joined.recv().unwrap());
    assert_eq!(
        within("the first member to join", first).await.unwrap(),
        (0, 0)
    );

    let client = within("connect", Client::connect(addr)).await.unwrap();
    let room: RoomRef = client.root().await.unwrap();
    let (ears, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let join = room.join("second".into(), ListenerRef::new(Ears(ears)));
    assert_eq!(within("the second join", join).await.unwrap(), (0, 1));
    let took = started.elapsed();
    assert!(took >= DEADLINE, "{took:?}");
    println!("the join with a frozen member took {took:?}");

    // The frozen member was dropped: the next join is told to the second member only.
    let (third_ears, _third_heard) = tokio::sync::mpsc::unbounded_channel();
    let join = room.join("third".into(), ListenerRef::new(Ears(third_ears)));
    assert_eq!(within("the third join", join).await.unwrap(), (1, 0));
    assert_eq!(heard.recv().await.unwrap(), "third");

    thaw.send(()).unwrap();
    tokio::task::spawn_blocking(move || frozen.join().unwrap())
        .await
        .unwrap();
    drop((room, client));
    stop.send(()).unwrap();
    within("the server to stop", serving).await.unwrap();
}

/// A call still waiting for room in the outbox (the peer reads nothing, the budget is spent)
/// times out at its deadline too, long before the writer's frame timeout gives up on the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_room_times_out_at_its_deadline() {
    let config = Config::default()
        .max_frame_length(256 * 1024)
        .output_budget(256 * 1024)
        .frame_timeout(Duration::from_secs(60))
        .default_call_timeout(DEADLINE)
        .no_keepalive();
    // The raw server never reads: loopback's buffers and the budget fill, and later calls wait
    // for room.
    let (client, _raw) = RawServer::with_client(config).await;
    let calc: CalculatorRef = client.root().await.unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|_| tokio::spawn(calc.size(vec![7u8; 200_000])))
        .collect();
    for call in calls {
        let e = within("each call's deadline", call)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.timeout_kind(), Some(TimeoutKind::Call), "{e}");
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    assert!(client.is_connected(), "the peer is not given up on yet");
    client.close();
}
