//! Calls are lazy like every Rust future: a call future sends nothing and runs nothing before
//! its first poll (dropped unpolled, the call never happened; kept unpolled, it does not ride
//! out with other traffic), dropped after its first poll it is cancelled at the callee, its
//! deadline counts from its first poll, and calls awaited together still share one write.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rpc_core::protocol::Message;
use rpc_core::{CallError, Client, Config, Server, remote};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The tag of every [`Mark`] decoded in this test binary: a call whose `Mark` argument was
/// decoded at the callee reached it (arguments are decoded as the frame is read, before the
/// handler is spawned, so this is exact and immediate, unlike the handler's own effects).
static ARRIVED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Tags unique in this test binary (its tests run in parallel and share [`ARRIVED`]).
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

fn fresh_tag() -> u64 {
    NEXT_TAG.fetch_add(1, Ordering::Relaxed)
}

fn arrived(tag: u64) -> bool {
    ARRIVED.lock().unwrap().contains(&tag)
}

/// An argument that records, in [`ARRIVED`], that it was decoded.
#[derive(Debug, Serialize)]
pub struct Mark(pub u64);

impl<'de> Deserialize<'de> for Mark {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tag = u64::deserialize(deserializer)?;
        ARRIVED.lock().unwrap().push(tag);
        Ok(Mark(tag))
    }
}

/// A method with a side effect, one that never finishes, and one that answers at once.
#[remote]
pub trait Journal {
    /// Notes `mark`'s tag (on its first poll, before any await); returns it.
    async fn remote_note(&self, mark: Mark) -> u64;
    /// Reports `Started(tag)`, then waits for ever; reports `Dropped(tag)` when dropped.
    async fn remote_forever(&self, tag: u64);
    /// Returns `n` at once.
    async fn remote_echo(&self, n: u64) -> u64;
}

#[derive(Debug, PartialEq)]
enum Event {
    Started(u64),
    Dropped(u64),
}

struct Book {
    noted: Arc<Mutex<Vec<u64>>>,
    events: mpsc::UnboundedSender<Event>,
}

/// Reports `Dropped` when the handler holding it is dropped.
struct DropSignal(u64, mpsc::UnboundedSender<Event>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.1.send(Event::Dropped(self.0));
    }
}

impl Journal for Book {
    async fn remote_note(&self, mark: Mark) -> u64 {
        self.noted.lock().unwrap().push(mark.0);
        mark.0
    }

    async fn remote_forever(&self, tag: u64) {
        let _signal = DropSignal(tag, self.events.clone());
        let _ = self.events.send(Event::Started(tag));
        std::future::pending::<()>().await;
    }

    async fn remote_echo(&self, n: u64) -> u64 {
        n
    }
}

/// A journal server and a client connected to it; the server is stopped by [`Setup::stop`]
/// (or aborted when dropped, in a failing test).
struct Setup {
    client: Client,
    journal: JournalRef,
    noted: Arc<Mutex<Vec<u64>>>,
    events: mpsc::UnboundedReceiver<Event>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Setup {
    async fn new() -> Setup {
        let noted = Arc::new(Mutex::new(Vec::new()));
        let (events_tx, events) = mpsc::unbounded_channel();
        let book = Book {
            noted: Arc::clone(&noted),
            events: events_tx,
        };
        let server = Server::bind("127.0.0.1:0", JournalRef::new(book))
            .await
            .expect("bind 127.0.0.1:0")
            .with_config(Config::default().shutdown_grace(Duration::from_secs(1)));
        let addr = server.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(server.run_until(async move {
            let _ = stop.await;
        }));
        let client = within("connect", Client::connect(addr))
            .await
            .expect("connect");
        let journal = client.root().await.expect("root");
        Setup {
            client,
            journal,
            noted,
            events,
            shutdown: Some(shutdown),
            server,
        }
    }

    fn noted(&self) -> Vec<u64> {
        self.noted.lock().unwrap().clone()
    }

    async fn next_event(&mut self) -> Event {
        within("a handler event", self.events.recv())
            .await
            .expect("the server is gone")
    }

    /// Closes the client, shuts the server down gracefully and waits for it.
    async fn stop(mut self) {
        self.client.close();
        let _ = self.shutdown.take().expect("stopped twice").send(());
        within("the server to stop", &mut self.server)
            .await
            .expect("the server task failed");
    }
}

/// 1. A call future made and dropped without a poll sends nothing and runs nothing: a later
///    call on the same connection (which the callee would see after it) finds no trace of it.
///    (Before calls were lazy its frame was queued when it was made, and its handler ran.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_before_its_first_poll_never_happens() {
    let s = Setup::new().await;
    let dropped: Vec<u64> = (0..50).map(|_| fresh_tag()).collect();
    for &tag in &dropped {
        let call = s.journal.note(Mark(tag));
        drop(call);
    }
    // The barrier: anything sent before it reaches the callee before it.
    let barrier = fresh_tag();
    let answer = within("the barrier call", s.journal.note(Mark(barrier))).await;
    assert_eq!(answer.unwrap(), barrier);
    assert!(arrived(barrier));
    for &tag in &dropped {
        assert!(
            !arrived(tag),
            "the call {tag}, dropped unpolled, reached the callee"
        );
    }
    assert_eq!(s.noted(), vec![barrier], "a call dropped unpolled ran");
    s.stop().await;
}

/// 2. A call future kept but never polled does not go out with other calls: only its first
///    poll sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_kept_unpolled_is_not_sent_with_other_calls() {
    let s = Setup::new().await;
    let tag = fresh_tag();
    let kept = s.journal.note(Mark(tag));
    for round in 0..3 {
        // One call awaited alone, and a burst awaited together.
        let other = fresh_tag();
        let answer = within("another call", s.journal.note(Mark(other))).await;
        assert_eq!(answer.unwrap(), other);
        let burst: Vec<u64> = (0..10).map(|_| fresh_tag()).collect();
        let answers = within(
            "a burst of calls",
            futures::future::try_join_all(burst.iter().map(|&t| s.journal.note(Mark(t)))),
        )
        .await;
        assert_eq!(answers.unwrap(), burst);
        assert!(
            !arrived(tag),
            "round {round}: the unpolled call reached the callee"
        );
        assert!(!s.noted().contains(&tag), "round {round}: it ran");
    }
    // Polled at last: it goes out and runs.
    assert_eq!(within("the kept call", kept).await.unwrap(), tag);
    assert!(arrived(tag));
    assert!(s.noted().contains(&tag));
    s.stop().await;
}

/// Reads frames until a call arrives, answering the keepalive pings on the way; returns the
/// call's id, method and encoded arguments.
async fn next_call(raw: &mut RawPeer) -> (u64, String, Vec<u8>) {
    loop {
        match raw.read_message().await {
            (Message::Ping { nonce }, _) => {
                raw.send(&frame(&encode(&Message::Pong { nonce }))).await
            }
            (Message::Call { id, method, .. }, args) => return (id, method.into_owned(), args),
            other => panic!("expected a call or a ping, got {other:?}"),
        }
    }
}

/// 2, on the wire: with a raw server, neither the client's keepalive ping nor another call
/// carries an unpolled call out with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpolled_call_rides_out_with_neither_a_ping_nor_another_call() {
    // The raw server says nothing: the client pings it after 50 ms.
    let config = Config::default().keepalive(Duration::from_millis(50), PATIENCE);
    let (client, mut raw) = RawServer::with_client(config).await;
    let journal: JournalRef = client.root().await.unwrap();
    let kept = journal.echo(1);

    match raw.read_message().await {
        (Message::Ping { nonce }, _) => raw.send(&frame(&encode(&Message::Pong { nonce }))).await,
        other => panic!("expected the keepalive ping first, got {other:?}"),
    }
    let other = tokio::spawn(journal.echo(2));
    let (id, method, args) = next_call(&mut raw).await;
    assert_eq!(method, "echo");
    assert_eq!(
        decode_value::<(u64,)>(&args),
        (2,),
        "the unpolled call went out first"
    );
    raw.answer(id, &2u64).await;
    assert_eq!(within("the other call", other).await.unwrap().unwrap(), 2);

    // Polled at last, it goes out.
    let kept = tokio::spawn(kept);
    let (id, method, args) = next_call(&mut raw).await;
    assert_eq!(method, "echo");
    assert_eq!(decode_value::<(u64,)>(&args), (1,));
    raw.answer(id, &1u64).await;
    assert_eq!(within("the kept call", kept).await.unwrap().unwrap(), 1);

    client.close();
    raw.expect_closed().await;
}

/// 3. A call dropped after its first poll is cancelled at the callee: its handler is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_after_its_first_poll_is_cancelled_at_the_callee() {
    let mut s = Setup::new().await;
    let tag = fresh_tag();
    let mut call = Box::pin(s.journal.forever(tag));
    // Poll it until its handler has started at the callee, then drop it.
    tokio::select! {
        result = &mut call => panic!("a call that never finishes returned {result:?}"),
        event = s.next_event() => assert_eq!(event, Event::Started(tag)),
    }
    drop(call);
    assert_eq!(s.next_event().await, Event::Dropped(tag));
    // The connection is fine.
    assert_eq!(within("a call", s.journal.echo(5)).await.unwrap(), 5);
    s.stop().await;
}

/// 3, on the wire: a call polled exactly once and then dropped either never goes out or goes
/// out followed by its cancel; nothing else is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_polled_once_then_dropped_is_followed_by_its_cancel() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let journal: JournalRef = client.root().await.unwrap();
    let mut call = Box::pin(journal.echo(1));
    assert!(futures::poll!(&mut call).is_pending());
    drop(call);
    let barrier = tokio::spawn(journal.echo(2));
    let mut before = Vec::new();
    let barrier_id = loop {
        match raw.read_message().await {
            (Message::Call { id, .. }, args) if decode_value::<(u64,)>(&args) == (2,) => break id,
            (message, _) => before.push(message),
        }
    };
    match before.as_slice() {
        [] => println!("the call polled once never went out"),
        [
            Message::Call { id: call, .. },
            Message::Cancel { id: cancelled },
        ] if call == cancelled => println!("the call polled once went out, then its cancel"),
        other => panic!("expected nothing, or the call and its cancel, got {other:?}"),
    }
    raw.answer(barrier_id, &2u64).await;
    assert_eq!(within("the barrier", barrier).await.unwrap().unwrap(), 2);
    client.close();
    raw.expect_closed().await;
}

/// Makes call after call on `journal`'s connection until `how_long` has passed (other traffic
/// while an unpolled call waits); returns how many.
async fn round_trips_for(journal: &JournalRef, how_long: Duration) -> u64 {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < how_long {
        n += 1;
        assert_eq!(within("a round trip", journal.echo(n)).await.unwrap(), n);
    }
    n
}

/// 4. The deadline of `with_timeout` counts from the first poll, not from when the call
///    future was made, even with other calls going out meanwhile; and once polled, it
///    applies. (Before calls were lazy, the other traffic carried the call out early and the
///    callee's deadline, counted from its arrival, expired before the first poll.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_counts_from_the_first_poll() {
    let s = Setup::new().await;
    let timeout = Duration::from_millis(300);
    let journal = s.journal.with_timeout(timeout);

    // Waiting past the timeout before the first poll is what this test is about: the wait is
    // the subject, not synchronisation.
    let call = journal.echo(7);
    let trips = round_trips_for(&s.journal, 2 * timeout).await;
    assert_eq!(within("the late call", call).await.unwrap(), 7);

    // A call that never finishes still times out, counted from its first poll.
    let call = journal.forever(fresh_tag());
    round_trips_for(&s.journal, 2 * timeout).await;
    let polled = Instant::now();
    match within("the timeout", call).await {
        Err(CallError::Timeout { after, .. }) => assert_eq!(after, timeout),
        other => panic!("expected a Timeout, got {other:?}"),
    }
    let waited = polled.elapsed();
    println!(
        "timed out {waited:?} after the first poll (timeout {timeout:?}; {trips} other calls \
         while the first call waited unpolled)"
    );
    assert!(
        waited >= timeout,
        "timed out {waited:?} after the first poll"
    );
    s.stop().await;
}

/// 5. Calls made back to back and awaited together go out in (nearly) one write: a raw
///    server reads all 32 call frames in a handful of reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_awaited_together_share_writes() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let journal: JournalRef = client.root().await.unwrap();
    let calls: Vec<_> = (0..32u64).map(|n| journal.echo(n)).collect();
    let joined = tokio::spawn(futures::future::join_all(calls));

    let mut received = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut reads = 0;
    let mut arrived = Vec::new();
    within("32 call frames", async {
        while arrived.len() < 32 {
            let n = raw.stream.read(&mut buf).await.expect("raw read");
            assert!(n > 0, "the client hung up");
            reads += 1;
            received.extend_from_slice(&buf[..n]);
            for payload in take_frames(&mut received) {
                match decode_message(&payload) {
                    (Message::Call { id, method, .. }, args) => {
                        assert_eq!(method, "echo");
                        arrived.push((id, decode_value::<(u64,)>(&args).0));
                    }
                    other => panic!("expected a call, got {other:?}"),
                }
            }
        }
    })
    .await;
    println!("32 calls awaited together arrived in {reads} read(s)");
    assert!(received.is_empty(), "more than 32 frames");
    assert!(reads <= 3, "32 calls awaited together took {reads} reads");

    let mut answers = Vec::new();
    for &(id, n) in &arrived {
        answers.extend(frame(&answer_payload(id, &n)));
    }
    raw.send(&answers).await;
    let results = within("the 32 answers", joined).await.unwrap();
    for (n, result) in results.into_iter().enumerate() {
        assert_eq!(result.unwrap(), n as u64);
    }
    client.close();
    raw.expect_closed().await;
}
