//! Shared test helpers: the test trait `Calculator`, its implementation `Calc` with a `Probe` that reports what handlers do,
//! a server that is always stopped, and a raw-socket peer that speaks the wire protocol by hand.

#![allow(dead_code, unreachable_pub)]

pub mod tls;
pub mod warnings;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rpc_core::protocol::{MAGIC, Message, PROTOCOL_VERSION};
use rpc_core::{CallError, Client, Config, RemoteErrorKind, Server, remote};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Defines the test `$name` twice, as `$name::multi_thread` (on 2 workers) and
/// `$name::current_thread`: rpc-core runs the handlers of incoming calls differently on the
/// two (in tasks of their own, or first-polled by the connection's reader).
#[allow(unused_macros)]
macro_rules! on_both_runtimes {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run() $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multi_thread() {
                run().await
            }

            #[tokio::test(flavor = "current_thread")]
            async fn current_thread() {
                run().await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_runtimes;

/// How long any single expected event may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {PATIENCE:?} waiting for {what}"),
    }
}

/// Asserts that `result` is a remote error of `kind`.
#[track_caller]
pub fn assert_remote<T: std::fmt::Debug>(result: Result<T, CallError>, kind: RemoteErrorKind) {
    match result {
        Err(CallError::Remote { kind: k, .. }) if k == kind => {}
        other => panic!("expected a remote {kind:?} error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The test trait.
// ---------------------------------------------------------------------------------------------

/// The calculator of the seed, plus hooks for tests.
#[remote]
pub trait Calculator {
    /// `(a + b, worker id)`.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
    /// Returns `value` after `delay_ms` milliseconds (after one yield when 0).
    async fn remote_echo_after(&self, value: u64, delay_ms: u64) -> u64;
    /// Reports `Started(tag)`, waits until the gate opens, reports `Finished(tag)`, returns
    /// `tag`; reports `Dropped(tag)` if dropped before finishing.
    async fn remote_wait(&self, tag: u64) -> u64;
    /// Like `wait`, then returns `len` bytes.
    async fn remote_wait_then_blob(&self, tag: u64, len: u32) -> Vec<u8>;
    /// Panics (after one yield if `after_await`).
    async fn remote_panic(&self, after_await: bool);
    /// The length of `data`.
    async fn remote_size(&self, data: Vec<u8>) -> usize;
    /// `len` bytes.
    async fn remote_blob(&self, len: u32) -> Vec<u8>;
    /// Reports `tag` on a synchronous channel on its first poll and, if `block`, blocks its
    /// thread until released; then behaves like `wait`.
    async fn remote_block_first_poll(&self, tag: u64, block: bool) -> u64;
}

// ---------------------------------------------------------------------------------------------
// The implementation and its probe.
// ---------------------------------------------------------------------------------------------

/// What a `wait` handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Started(u64),
    Finished(u64),
    Dropped(u64),
}

/// The test's side of a [`Calc`]: its events and the gate its `wait` handlers wait on.
pub struct Probe {
    events: mpsc::UnboundedReceiver<Event>,
    gate: Arc<watch::Sender<bool>>,
    sync_events: std::sync::mpsc::Receiver<u64>,
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl Probe {
    /// The next event.
    pub async fn next(&mut self) -> Event {
        within("a handler event", self.events.recv())
            .await
            .expect("every Calc is gone")
    }

    /// Waits for `Started` of `n` handlers (in any order) and returns their tags.
    pub async fn started(&mut self, n: usize) -> Vec<u64> {
        let mut tags = Vec::new();
        while tags.len() < n {
            match self.next().await {
                Event::Started(t) => tags.push(t),
                other => panic!("expected Started, got {other:?}"),
            }
        }
        tags.sort_unstable();
        tags
    }

    /// Lets every `wait` handler, running or future, finish.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Blocks the thread until a `block_first_poll` handler reports its tag, or for at most
    /// [`PATIENCE`]; for tests that run no async code on this thread.
    pub fn blocking_first_poll(&self) -> Option<u64> {
        self.sync_events.recv_timeout(PATIENCE).ok()
    }

    /// Unblocks every `block_first_poll` handler, running or future.
    pub fn release_blocked(&self) {
        let (released, changed) = &*self.released;
        *released.lock().unwrap() = true;
        changed.notify_all();
    }
}

/// A calculator with worker id `id`.
pub struct Calc {
    pub id: u32,
    events: mpsc::UnboundedSender<Event>,
    gate: Arc<watch::Sender<bool>>,
    sync_events: std::sync::mpsc::Sender<u64>,
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl Calc {
    pub fn new(id: u32) -> (Calc, Probe) {
        let (tx, rx) = mpsc::unbounded_channel();
        let gate = Arc::new(watch::Sender::new(false));
        let (sync_tx, sync_rx) = std::sync::mpsc::channel();
        let released = Arc::new((Mutex::new(false), Condvar::new()));
        (
            Calc {
                id,
                events: tx,
                gate: Arc::clone(&gate),
                sync_events: sync_tx,
                released: Arc::clone(&released),
            },
            Probe {
                events: rx,
                gate,
                sync_events: sync_rx,
                released,
            },
        )
    }

    /// A proxy to a new local calculator.
    pub fn root(id: u32) -> (CalculatorRef, Probe) {
        let (calc, probe) = Calc::new(id);
        (CalculatorRef::new(calc), probe)
    }
}

/// Reports `Dropped` unless disarmed.
struct DropSignal {
    tag: u64,
    events: mpsc::UnboundedSender<Event>,
    armed: bool,
}

impl Drop for DropSignal {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.events.send(Event::Dropped(self.tag));
        }
    }
}

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, self.id)
    }

    async fn remote_echo_after(&self, value: u64, delay_ms: u64) -> u64 {
        if delay_ms == 0 {
            tokio::task::yield_now().await;
        } else {
            // The handler's "work", not synchronisation.
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        value
    }

    async fn remote_wait(&self, tag: u64) -> u64 {
        let mut signal = DropSignal {
            tag,
            events: self.events.clone(),
            armed: true,
        };
        let mut gate = self.gate.subscribe();
        let _ = self.events.send(Event::Started(tag));
        let _ = gate.wait_for(|open| *open).await;
        signal.armed = false;
        let _ = self.events.send(Event::Finished(tag));
        tag
    }

    async fn remote_wait_then_blob(&self, tag: u64, len: u32) -> Vec<u8> {
        self.remote_wait(tag).await;
        vec![0xAB; len as usize]
    }

    async fn remote_panic(&self, after_await: bool) {
        if after_await {
            tokio::task::yield_now().await;
        }
        panic!("this handler panics on purpose");
    }

    async fn remote_size(&self, data: Vec<u8>) -> usize {
        data.len()
    }

    async fn remote_blob(&self, len: u32) -> Vec<u8> {
        vec![0xAB; len as usize]
    }

    async fn remote_block_first_poll(&self, tag: u64, block: bool) -> u64 {
        let _ = self.sync_events.send(tag);
        if block {
            // Blocks this runtime thread on purpose: the test controls what happens meanwhile.
            let (released, changed) = &*self.released;
            let guard = released.lock().unwrap();
            let _ = changed.wait_timeout_while(guard, PATIENCE, |released| !*released);
        }
        self.remote_wait(tag).await
    }
}

// ---------------------------------------------------------------------------------------------
// Servers and clients.
// ---------------------------------------------------------------------------------------------

/// A server on `127.0.0.1:0` running in a task; stopped by [`TestServer::stop`], or aborted
/// when dropped (a failing test).
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(root: CalculatorRef, config: Config) -> TestServer {
        let server = Server::bind("127.0.0.1:0", root)
            .await
            .expect("bind 127.0.0.1:0")
            .with_config(config);
        TestServer::serve(server)
    }

    /// Runs `server` (bound, configured, with its registrations) in a task.
    pub fn serve(server: Server) -> TestServer {
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// A server of a new `Calc` with id `id` and the default config.
    pub async fn calc(id: u32) -> (TestServer, Probe) {
        TestServer::calc_with(id, Config::default()).await
    }

    pub async fn calc_with(id: u32, config: Config) -> (TestServer, Probe) {
        let (root, probe) = Calc::root(id);
        (TestServer::start(root, config).await, probe)
    }

    /// Begins the graceful shutdown; returns the task running `run_until`.
    pub fn begin_shutdown(&mut self) -> JoinHandle<()> {
        let _ = self.shutdown.take().expect("shut down twice").send(());
        self.task.take().expect("shut down twice")
    }

    /// Kills the server at once (its task aborted, every connection dropped); returns the task.
    pub fn begin_shutdown_abruptly(&mut self) -> JoinHandle<()> {
        let task = self.task.take().expect("shut down twice");
        task.abort();
        task
    }

    /// Shuts down gracefully and waits for `run_until` to return.
    pub async fn stop(mut self) {
        let task = self.begin_shutdown();
        within("run_until to return", task)
            .await
            .expect("the server task failed");
    }

    /// A connected client with the default config and its root proxy.
    pub async fn client(&self) -> (Client, CalculatorRef) {
        let client = within("connect", Client::connect(self.addr))
            .await
            .expect("connect");
        let root = client.root().await.expect("root");
        (client, root)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Makes 1,000 calls at once on `calc`, each handler waiting a random 0-20 ms, and checks that
/// every answer goes to its own call.
pub async fn thousand_echoes(calc: &CalculatorRef) {
    use rand::Rng;
    let work: Vec<(u64, u64)> = {
        let mut rng = rand::rng();
        (0..1000)
            .map(|i| {
                (
                    (i << 32) | u64::from(rng.random::<u32>()),
                    rng.random_range(0..=20),
                )
            })
            .collect()
    };
    let calls = work
        .iter()
        .map(|&(value, delay)| calc.echo_after(value, delay));
    let answers = within("1,000 answers", futures::future::join_all(calls)).await;
    for (answer, (value, _)) in answers.into_iter().zip(&work) {
        assert_eq!(answer.expect("a call failed"), *value);
    }
}

/// Asserts that `calc` answers a call correctly.
pub async fn assert_serves(calc: &CalculatorRef, id: u32) {
    let answer = within("a call", calc.calculate(20, 22)).await;
    assert_eq!(answer.expect("the call failed"), (42, id));
}

// ---------------------------------------------------------------------------------------------
// The wire protocol by hand.
// ---------------------------------------------------------------------------------------------

/// A hello frame payload with `version`.
pub fn hello_payload(version: u16) -> [u8; 8] {
    let v = version.to_be_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1], 0, 0]
}

/// `payload` with its 4-byte big-endian length in front.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// bincode 2, standard configuration: what pbrs puts on the wire.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
}

/// The payload of a call frame: the `Call` header and the encoded argument tuple.
pub fn call_payload<A: Serialize>(id: u64, object: u64, method: &str, args: A) -> Vec<u8> {
    call_payload_raw(id, object, method, &encode(&args))
}

/// The payload of a call frame whose encoded argument tuple is `args`, written by hand.
pub fn call_payload_raw(id: u64, object: u64, method: &str, args: &[u8]) -> Vec<u8> {
    let mut payload = encode(&Message::Call {
        id,
        object,
        method: method.into(),
        deadline_ms: None,
        refs: Vec::new(),
    });
    payload.extend_from_slice(args);
    payload
}

/// The payload of an answer frame (no references) returning `value`.
pub fn answer_payload<T: Serialize>(id: u64, value: &T) -> Vec<u8> {
    let mut payload = encode(&Message::Answer {
        id,
        refs: Vec::new(),
    });
    payload.extend_from_slice(&encode(value));
    payload
}

/// Takes every complete frame off the front of `received`; returns their payloads.
pub fn take_frames(received: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while received.len() >= 4 {
        let len = u32::from_be_bytes(received[..4].try_into().unwrap()) as usize;
        if received.len() < 4 + len {
            break;
        }
        frames.push(received[4..4 + len].to_vec());
        received.drain(..4 + len);
    }
    frames
}

/// Splits a frame payload into its message header and the rest.
pub fn decode_message(payload: &[u8]) -> (Message<'static>, Vec<u8>) {
    let (message, used): (Message<'_>, usize) = bincode::serde::borrow_decode_from_slice(
        payload,
        bincode::config::standard().with_limit::<{ 1 << 20 }>(),
    )
    .expect("decode a message");
    (message.into_owned(), payload[used..].to_vec())
}

pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<{ 1 << 20 }>(),
    )
    .expect("decode a value");
    assert_eq!(used, bytes.len(), "trailing bytes after the value");
    value
}

/// Asserts that `message` is the error answer to call `id`, of `kind`, containing `contains`.
#[track_caller]
pub fn assert_error(message: &Message<'_>, id: u64, kind: RemoteErrorKind, contains: &str) {
    match message {
        Message::Error { id: got, error } if *got == id => {
            assert_eq!(error.kind, kind, "{error:?}");
            assert!(error.message.contains(contains), "{error:?}");
        }
        other => panic!("expected a {kind:?} error answer to call {id}, got {other:?}"),
    }
}

/// A peer that writes whatever bytes the test wants, over TCP or any other stream (TLS).
pub struct RawPeer<S = TcpStream> {
    pub stream: S,
}

impl RawPeer {
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        let stream = within("raw connect", TcpStream::connect(addr))
            .await
            .expect("raw connect");
        RawPeer { stream }
    }

    /// Connects and exchanges valid hellos.
    pub async fn handshaken(addr: SocketAddr) -> RawPeer {
        let mut peer = RawPeer::connect(addr).await;
        peer.exchange_hellos().await;
        peer
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawPeer<S> {
    /// Sends a valid hello and checks the server's.
    pub async fn exchange_hellos(&mut self) {
        self.send(&frame(&hello_payload(PROTOCOL_VERSION))).await;
        let hello = self.read_frame().await;
        assert_eq!(hello, hello_payload(PROTOCOL_VERSION), "the server's hello");
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        within("a raw write", self.stream.write_all(bytes))
            .await
            .expect("raw write");
    }

    /// Reads one frame's payload.
    pub async fn read_frame(&mut self) -> Vec<u8> {
        within("a frame from the server", async {
            let len = self.stream.read_u32().await.expect("read a frame length");
            let mut payload = vec![0; len as usize];
            self.stream
                .read_exact(&mut payload)
                .await
                .expect("read a frame payload");
            payload
        })
        .await
    }

    /// Reads one frame and splits it into its message header and the rest.
    pub async fn read_message(&mut self) -> (Message<'static>, Vec<u8>) {
        decode_message(&self.read_frame().await)
    }

    /// Answers call `id` with `value` (no references).
    pub async fn answer<T: Serialize>(&mut self, id: u64, value: &T) {
        self.send(&frame(&answer_payload(id, value))).await;
    }

    /// Sends a call and reads the message that answers it.
    pub async fn call<A: Serialize>(
        &mut self,
        id: u64,
        object: u64,
        method: &str,
        args: A,
    ) -> (Message<'static>, Vec<u8>) {
        self.send(&frame(&call_payload(id, object, method, args)))
            .await;
        decode_message(&self.read_frame().await)
    }

    /// Waits until the server closes the connection (EOF or reset); returns what it sent
    /// meanwhile.
    pub async fn expect_closed(&mut self) -> Vec<u8> {
        within("the server to close the connection", async {
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
    }
}

/// A pbrs "server" written by hand: a listener on `127.0.0.1:0` whose connections the test
/// drives frame by frame (as the server side: the client calls it, it can call the client).
pub struct RawServer {
    listener: TcpListener,
    pub addr: SocketAddr,
}

impl RawServer {
    pub async fn bind() -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        RawServer { listener, addr }
    }

    /// Accepts one connection and exchanges valid hellos.
    pub async fn accept(&self) -> RawPeer {
        let (stream, _) = within("a raw accept", self.listener.accept())
            .await
            .expect("raw accept");
        let mut peer = RawPeer { stream };
        peer.send(&frame(&hello_payload(PROTOCOL_VERSION))).await;
        let hello = peer.read_frame().await;
        assert_eq!(hello, hello_payload(PROTOCOL_VERSION), "the client's hello");
        peer
    }

    /// A [`Client`] with `config` connected to a new raw server, and the raw server's end of
    /// the connection.
    pub async fn with_client(config: Config) -> (Client, RawPeer) {
        let server = RawServer::bind().await;
        let (client, peer) = tokio::join!(
            within("connect", Client::connect_with(server.addr, config)),
            server.accept()
        );
        (client.expect("connect to the raw server"), peer)
    }
}

// ---------------------------------------------------------------------------------------------
// An object handed out by reference, that reports its drop.
// ---------------------------------------------------------------------------------------------

/// An object the server hands out; reports its drop.
#[remote]
pub trait Thing {
    /// Its serial number.
    async fn remote_serial(&self) -> u64;
}

/// A `Thing` that sends its serial to `dropped` when dropped.
pub struct Item {
    pub serial: u64,
    pub dropped: tokio::sync::mpsc::UnboundedSender<u64>,
}

impl Drop for Item {
    fn drop(&mut self) {
        let _ = self.dropped.send(self.serial);
    }
}

impl Thing for Item {
    async fn remote_serial(&self) -> u64 {
        self.serial
    }
}

/// Lives in the client; called back by the server.
#[remote]
pub trait Listener {
    /// Records `n`; returns twice `n`.
    async fn remote_notify(&self, n: u32) -> u32;
}

/// A `Listener` that sends every `n` it is notified of to `seen`.
pub struct Recorder {
    pub seen: tokio::sync::mpsc::UnboundedSender<u32>,
}

impl Listener for Recorder {
    async fn remote_notify(&self, n: u32) -> u32 {
        let _ = self.seen.send(n);
        n * 2
    }
}
