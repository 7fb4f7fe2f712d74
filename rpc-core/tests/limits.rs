//! Limits under attack, from raw sockets against a real [`Server`] on 127.0.0.1: a flood of
//! calls whose error answers are read only slowly, or not at all; many frames that stop after
//! their header and hold the server's memory budget; more connections than the server serves.
//!
//! Every memory figure is read from the server's own counters ([`ServerStats`],
//! [`Peer::queued_bytes`]) and printed (`cargo test --test limits -- --nocapture` shows them).
//! Every attack loop is bounded in count and in time and stops by itself; every task and
//! socket a test starts, it stops.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::warnings::{capture_warnings, warnings_about};
use common::{PATIENCE, RawPeer, call_payload, frame, within};
use rpc_core::protocol::ROOT_OBJECT;
use rpc_core::{Client, Config, Peer, Server, ServerStats, remote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// The root object of the servers under attack.
#[remote]
pub trait Target {
    /// Returns `data` unchanged.
    async fn remote_echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// Reports the calling connection to the test, then never returns.
    async fn remote_hang(&self);
}

struct Victim {
    peers: mpsc::UnboundedSender<Peer>,
}

impl Target for Victim {
    async fn remote_echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn remote_hang(&self) {
        if let Some(peer) = Peer::current() {
            let _ = self.peers.send(peer);
        }
        std::future::pending::<()>().await
    }
}

/// A server of a [`Victim`] in a task: its address, its counters and the connections that
/// called `hang`. Stopped by [`Served::stop`], aborted when dropped (a failing test).
struct Served {
    addr: SocketAddr,
    stats: ServerStats,
    config: Config,
    hung: mpsc::UnboundedReceiver<Peer>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Served {
    async fn start(config: Config) -> Served {
        let (peers, hung) = mpsc::unbounded_channel();
        let server = Server::bind("127.0.0.1:0", TargetRef::new(Victim { peers }))
            .await
            .expect("bind 127.0.0.1:0")
            .with_config(config.clone());
        let addr = server.local_addr();
        let stats = server.stats();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = stop.await;
        }));
        Served {
            addr,
            stats,
            config,
            hung,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// The server's side of the next connection that called `hang`.
    async fn next_hung(&mut self) -> Peer {
        within("a hang call to start", self.hung.recv())
            .await
            .expect("the server is gone")
    }

    /// A client with the server's config, and its root proxy.
    async fn client(&self) -> (Client, TargetRef) {
        let client = within(
            "connect",
            Client::connect_with(self.addr, self.config.clone()),
        )
        .await
        .expect("connect");
        let root = client.root().await.expect("root");
        (client, root)
    }

    /// Shuts the server down gracefully and waits for it.
    async fn stop(mut self) {
        let _ = self.shutdown.take().expect("stopped twice").send(());
        let task = self.task.take().expect("stopped twice");
        within("the server to stop", task)
            .await
            .expect("the server task failed");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Aborts its task when dropped, so that a failing test leaves nothing running.
struct Task<T>(JoinHandle<T>);

impl<T> Task<T> {
    fn spawn(fut: impl std::future::Future<Output = T> + Send + 'static) -> Task<T>
    where
        T: Send + 'static,
    {
        Task(tokio::spawn(fut))
    }

    async fn join(mut self, what: &str) -> T {
        within(what, &mut self.0).await.expect("the task failed")
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until `ready()` holds, looking again every millisecond, for at most [`PATIENCE`]:
/// for the server's counters, which have no notification of their own.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    within(what, async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !ready() {
            tick.tick().await;
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Probes 1 and 2: a flood of tiny calls, each answered with an error, read slowly or not at all.
// ---------------------------------------------------------------------------------------------

/// What the flooding calls are refused with.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// Calls of object 999, which does not exist.
    NoSuchObject,
    /// Calls beyond `max_in_flight_calls(1)` while a `hang` call holds the one slot.
    Overloaded,
}

/// How the flooding peer reads what the server sends it.
#[derive(Debug, Clone, Copy)]
enum Reading {
    /// 4 KiB every 25 ms (160 KB/s, far slower than the error answers come).
    Trickle,
    /// Nothing at all.
    Nothing,
}

/// At most this many calls are sent (enough for many times the output budget of error
/// answers, and for the socket buffers in front of it).
const FLOOD_CALLS: u64 = 400_000;
/// Calls per write.
const FLOOD_BATCH: u64 = 500;
/// The id of the first flooding call. Ids from 2^16 to 2^32 all take five bytes (0xFC, then
/// the id as a little-endian u32), so one encoded call serves as the template of them all.
const FIRST_FLOOD_ID: u64 = 1 << 16;
/// What may be held beyond the output budget: a small frame still arriving, a hello.
const MARGIN: usize = 4 * 1024;

impl Refused {
    /// The payload of a call refused this way.
    fn call(self, id: u64) -> Vec<u8> {
        match self {
            Refused::NoSuchObject => call_payload(id, 999, "echo", (Vec::<u8>::new(),)),
            Refused::Overloaded => call_payload(id, ROOT_OBJECT, "hang", ()),
        }
    }
}

/// A call frame encoded once, whose id is patched for each call: the flood costs the sender
/// next to nothing, and the server's work is what the test measures.
struct CallTemplate {
    frame: Vec<u8>,
    id_at: usize,
}

impl CallTemplate {
    fn new(refused: Refused) -> CallTemplate {
        let encoded = frame(&refused.call(FIRST_FLOOD_ID));
        let id = (FIRST_FLOOD_ID as u32).to_le_bytes();
        let id_at = encoded
            .windows(5)
            .position(|w| w[0] == 0xFC && w[1..] == id)
            .expect("the id in the encoded call")
            + 1;
        let template = CallTemplate {
            frame: encoded,
            id_at,
        };
        // The patched frame is exactly what the encoder makes.
        for id in [FIRST_FLOOD_ID + 1, FIRST_FLOOD_ID + FLOOD_CALLS] {
            let mut patched = Vec::new();
            template.push(id, &mut patched);
            assert_eq!(patched, frame(&refused.call(id)), "call {id}");
        }
        template
    }

    /// Appends the frame of call `id` to `out`.
    fn push(&self, id: u64, out: &mut Vec<u8>) {
        let id = u32::try_from(id).expect("a five-byte id").to_le_bytes();
        let start = out.len() + self.id_at;
        out.extend_from_slice(&self.frame);
        out[start..start + 4].copy_from_slice(&id);
    }
}

/// What the flood did.
struct FloodReport {
    /// Calls sent.
    sent: u64,
    /// Calls the sockets still took after the server's side of the connection had reported
    /// it closed (the server's read half was still open).
    sent_after_close: u64,
    /// When the flood stopped.
    stopped_at: Instant,
    /// The most bytes the server had queued for the peer, sampled after every write.
    max_queued: usize,
    /// The write half, which must stay open until the test ends: dropping it would end the
    /// connection from this side.
    writer: OwnedWriteHalf,
}

/// Sends calls refused with `refused` (ids from [`FIRST_FLOOD_ID`] on) until `FLOOD_CALLS` are sent, a write
/// fails (the server closed), or `deadline`. `peer` is the server's side of the connection.
async fn flood(
    mut writer: OwnedWriteHalf,
    refused: Refused,
    deadline: Instant,
    peer: Peer,
) -> FloodReport {
    let mut sent = 0;
    let mut sent_after_close = 0;
    let mut max_queued = 0;
    let template = CallTemplate::new(refused);
    let mut batch = Vec::new();
    while sent < FLOOD_CALLS && Instant::now() < deadline {
        batch.clear();
        for id in FIRST_FLOOD_ID + sent..FIRST_FLOOD_ID + sent + FLOOD_BATCH {
            template.push(id, &mut batch);
        }
        match tokio::time::timeout_at(deadline, writer.write_all(&batch)).await {
            Ok(Ok(())) => {
                sent += FLOOD_BATCH;
                if !peer.is_connected() {
                    sent_after_close += FLOOD_BATCH;
                }
            }
            // Closed by the server (reset, broken pipe), or out of time.
            Ok(Err(_)) | Err(_) => break,
        }
        max_queued = max_queued.max(peer.queued_bytes());
    }
    FloodReport {
        sent,
        sent_after_close,
        stopped_at: Instant::now(),
        max_queued,
        writer,
    }
}

/// What the flooding peer's reader saw.
struct ReadReport {
    /// Bytes read from the server.
    read: usize,
    /// The most bytes the server had queued for the peer, sampled at every read.
    max_queued: usize,
    /// When the peer saw the end of the stream (EOF or reset).
    closed_at: Instant,
}

/// Reads as `reading` says until the server has closed `peer`, then as fast as it can until
/// the end of the stream.
async fn read_until_closed(mut reader: OwnedReadHalf, reading: Reading, peer: Peer) -> ReadReport {
    let mut report = ReadReport {
        read: 0,
        max_queued: 0,
        closed_at: Instant::now(),
    };
    let mut buf = vec![0u8; 4096];
    let mut pace = tokio::time::interval(Duration::from_millis(25));
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let disconnected = peer.disconnected();
    let mut disconnected = std::pin::pin!(disconnected);
    let mut server_closed = false;
    loop {
        if !server_closed {
            match reading {
                Reading::Trickle => tokio::select! {
                    _ = pace.tick() => {}
                    _ = &mut disconnected => server_closed = true,
                },
                Reading::Nothing => {
                    (&mut disconnected).await;
                    server_closed = true;
                }
            }
        }
        report.max_queued = report.max_queued.max(peer.queued_bytes());
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => report.read += n,
        }
    }
    report.closed_at = Instant::now();
    report
}

/// Probes 1 and 2: after the hello, a raw peer calls `hang` (which reports the server's side
/// of the connection), then floods the server with calls refused with `refused`, reading the
/// error answers as `reading` says. The server must close the connection, with one warning,
/// once what is queued for the peer would pass the output budget, and hold no more than that
/// budget meanwhile.
async fn flood_of_refused_calls(refused: Refused, reading: Reading) {
    capture_warnings();
    let frame_timeout = Duration::from_secs(60);
    let mut config = Config::default()
        .max_frame_length(64 * 1024)
        .frame_timeout(frame_timeout)
        .shutdown_grace(Duration::from_secs(1))
        .no_keepalive();
    if let Refused::Overloaded = refused {
        config = config.max_in_flight_calls(1);
    }
    let budget = config.effective_output_budget();
    let mut served = Served::start(config).await;
    let stats = served.stats.clone();

    let mut raw = RawPeer::handshaken(served.addr).await;
    let raw_addr = raw.stream.local_addr().unwrap();
    raw.send(&frame(&call_payload(1, ROOT_OBJECT, "hang", ())))
        .await;
    let peer = served.next_hung().await;
    assert_eq!(peer.calls_in_flight(), 1);

    let (reader, writer) = raw.stream.into_split();
    let started = Instant::now();
    let flooding = Task::spawn(flood(writer, refused, started + 2 * PATIENCE, peer.clone()));
    let read_task = Task::spawn(read_until_closed(reader, reading, peer.clone()));

    within(
        "the server to close the flooding connection",
        peer.disconnected(),
    )
    .await;
    let server_closed = started.elapsed();
    let report = read_task
        .join("the raw peer to see the end of the stream")
        .await;
    let flooded = flooding.join("the flood to stop").await;
    drop(flooded.writer);
    let max_queued = flooded.max_queued.max(report.max_queued);

    let reason = peer.disconnect_reason().expect("closed");
    let peak = stats.peak_bytes_held();
    println!(
        "flood of {refused:?} calls, reading {reading:?}: {} calls sent ({} taken after the \
         close), {} bytes read; server closed after {server_closed:?}, raw peer saw the end \
         after {:?}, flood stopped after {:?}; peak bytes held {peak} (output budget \
         {budget}); most queued seen {max_queued}; reason: {reason}",
        flooded.sent,
        flooded.sent_after_close,
        report.read,
        report.closed_at - started,
        flooded.stopped_at - started,
    );
    assert!(
        reason.contains("does not read"),
        "closed for another reason than the output budget: {reason}"
    );
    assert!(
        server_closed < frame_timeout / 4,
        "closed after {server_closed:?}: that is the stall timer, not the budget"
    );
    assert!(
        peak <= budget + MARGIN,
        "the server held {peak} bytes, over the output budget {budget} + {MARGIN}"
    );
    assert!(
        peak >= budget / 3 * 2,
        "the flood never filled the output budget ({peak} of {budget} bytes)"
    );
    assert!(
        max_queued <= budget,
        "{max_queued} bytes queued, over {budget}"
    );
    let warnings = warnings_about(raw_addr);
    assert_eq!(
        warnings.len(),
        1,
        "one warning naming the peer: {warnings:#?}"
    );
    println!("the warning: {}", warnings[0]);
    assert_eq!(peer.queued_bytes(), 0);
    until("the connection's bytes to be released", || {
        stats.bytes_held() == 0
    })
    .await;

    // Others are still served.
    let (client, target) = served.client().await;
    assert_eq!(
        within("an echo", target.echo(vec![1, 2, 3])).await.unwrap(),
        [1, 2, 3]
    );
    client.close();
    served.stop().await;
}

/// Probe 1: calls of a nonexistent object, as fast as the peer can send them, while it
/// reads the error answers only as a trickle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_flood_of_calls_to_no_object_is_cut_off_at_the_output_budget() {
    flood_of_refused_calls(Refused::NoSuchObject, Reading::Trickle).await;
}

/// Probe 1, calls beyond the in-flight cap: each is refused `Overloaded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_flood_of_overloaded_calls_is_cut_off_at_the_output_budget() {
    flood_of_refused_calls(Refused::Overloaded, Reading::Trickle).await;
}

/// Probe 2: the same flood from a peer that reads nothing; with a 60 s `frame_timeout`, it
/// is the output budget, not the stall timer, that closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_reading_nothing_is_cut_off_at_the_output_budget_before_the_stall_timer() {
    flood_of_refused_calls(Refused::NoSuchObject, Reading::Nothing).await;
}

// ---------------------------------------------------------------------------------------------
// Probe 3: many partial large frames.
// ---------------------------------------------------------------------------------------------

/// Sixteen raw peers each announce a frame of almost 1 MiB, send a few bytes of it and
/// stall, against a 4 MiB memory budget: the server holds at most the budget (plus one
/// frame), an honest client's small calls are served meanwhile, and its large call waits,
/// unrefused, until the stalled peers are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partial_large_frames_stay_within_the_memory_budget() {
    const FRAME: usize = 1 << 20;
    const BUDGET: usize = 4 << 20;
    const STALLED: usize = 16;
    const ANNOUNCED: usize = FRAME - 64;
    let config = Config::default()
        .max_frame_length(FRAME)
        .memory_budget(BUDGET)
        .frame_timeout(Duration::from_secs(60))
        .shutdown_grace(Duration::from_secs(1))
        .no_keepalive();
    let served = Served::start(config).await;
    let stats = served.stats.clone();
    assert_eq!(stats.memory_budget(), BUDGET);
    let bound = BUDGET + FRAME;
    let mut most_held = 0;
    let mut sample = |stats: &ServerStats| {
        let held = stats.bytes_held();
        most_held = most_held.max(held);
        assert!(held <= bound, "{held} bytes held, over {bound}");
    };

    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut raw = RawPeer::handshaken(served.addr).await;
        let mut partial = (ANNOUNCED as u32).to_be_bytes().to_vec();
        partial.extend_from_slice(&[0xEE; 16]);
        raw.send(&partial).await;
        stalled.push(raw);
        sample(&stats);
    }
    // Four of them fill the budget; the other twelve wait for it without reading on.
    until("the stalled frames to fill the budget", || {
        stats.bytes_held() >= 4 * ANNOUNCED
    })
    .await;
    assert_eq!(stats.connections(), STALLED);
    sample(&stats);

    let (small_client, small) = served.client().await;
    let (large_client, large) = served.client().await;
    for i in 0..20u8 {
        let back = within("a small echo", small.echo(vec![i; 100])).await;
        assert_eq!(back.expect("a small echo failed"), vec![i; 100]);
        sample(&stats);
    }
    // A large call made while the budget is full.
    let big = vec![0x5A; 900 * 1024];
    let large_call = Task::spawn({
        let big = big.clone();
        async move { large.echo(big).await }
    });
    for i in 0..20u8 {
        let back = within("a small echo", small.echo(vec![i; 1000])).await;
        assert_eq!(back.expect("a small echo failed"), vec![i; 1000]);
        sample(&stats);
    }
    assert!(
        !large_call.is_finished(),
        "the large call went through while four stalled frames held the whole budget"
    );
    let held_while_stalled = stats.bytes_held();

    let dropped = Instant::now();
    drop(stalled);
    let back = large_call.join("the large call").await;
    let large_took = dropped.elapsed();
    assert!(
        back.expect("the large call failed") == big,
        "the large echo came back changed"
    );
    until("every stalled connection to end", || {
        stats.connections() == 2
    })
    .await;
    until("the held bytes to return to 0", || stats.bytes_held() == 0).await;
    let peak = stats.peak_bytes_held();
    println!(
        "{STALLED} stalled frames of {ANNOUNCED} bytes, budget {BUDGET}: {held_while_stalled} \
         bytes held while they stalled, most sampled {most_held}, peak {peak}; the 900 KiB call \
         completed {large_took:?} after the stalled peers were dropped"
    );
    assert!(peak <= bound, "peak {peak} bytes held, over {bound}");
    small_client.close();
    large_client.close();
    served.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Probe 4: the connection cap.
// ---------------------------------------------------------------------------------------------

/// With `max_connections(2)`, a third connection is closed at once, before any hello, and
/// counted; once a served client leaves, a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    capture_warnings();
    let config = Config::default()
        .max_connections(2)
        .handshake_timeout(Duration::from_secs(5))
        .shutdown_grace(Duration::from_secs(1))
        .no_keepalive();
    let served = Served::start(config).await;
    let stats = served.stats.clone();
    let (first, first_target) = served.client().await;
    let (second, second_target) = served.client().await;
    for target in [&first_target, &second_target] {
        assert_eq!(within("an echo", target.echo(vec![9])).await.unwrap(), [9]);
    }
    assert_eq!(stats.connections(), 2);

    let mut third = RawPeer::connect(served.addr).await;
    let third_addr = third.stream.local_addr().unwrap();
    let started = Instant::now();
    let received = third.expect_closed().await;
    let closed_after = started.elapsed();
    assert!(
        received.is_empty(),
        "the third connection was sent {} bytes (a hello?) instead of being closed",
        received.len()
    );
    assert_eq!(stats.refused_connections(), 1);
    let warnings = warnings_about(third_addr);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    println!(
        "third connection closed after {closed_after:?}: {}",
        warnings[0]
    );
    drop(third);

    // The two served clients still are.
    for target in [&first_target, &second_target] {
        assert_eq!(within("an echo", target.echo(vec![8])).await.unwrap(), [8]);
    }

    first.close();
    drop(first_target);
    drop(first);
    until("the closed client's connection to end", || {
        stats.connections() == 1
    })
    .await;
    let (fourth, fourth_target) = served.client().await;
    assert_eq!(
        within("an echo", fourth_target.echo(vec![7]))
            .await
            .unwrap(),
        [7]
    );
    assert_eq!(stats.connections(), 2);
    assert_eq!(stats.refused_connections(), 1);
    println!(
        "connections {}, refused {}",
        stats.connections(),
        stats.refused_connections()
    );
    second.close();
    fourth.close();
    served.stop().await;
}
