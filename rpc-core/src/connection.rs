//! A connection: one transport, calls both ways.
//!
//! After the handshake a connection runs a **reader** task, a **writer** task that only steps
//! in when the socket is full (see [`crate::outbox`]), and, if enabled, a **keepalive** task.
//! The reader reads frames and routes them: an answer completes the pending call it belongs
//! to; a call is dispatched to the object it names in this connection's export table. A
//! handler is first polled right in the reader: if it finishes at once (most do), its answer
//! is queued without a task switch; otherwise it continues as a task of its own, so slow
//! handlers never hold up the others.
//!
//! Each connection has two object tables (see [`crate::refs`]): the objects it *exports* to
//! the peer (the root, and every local object sent over it), with how many times each was
//! sent, and the peer's objects it *imports*, with how many times each was received.
//!
//! Incoming calls in flight are bounded ([`Config::max_in_flight_calls`]); a call beyond the
//! bound is answered `Overloaded` at once. When the connection closes, for whatever reason,
//! every pending outgoing call fails with [`CallError::Disconnected`], every running handler
//! is dropped, every exported object is released, and the disconnect callbacks run.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::Either;
use futures::{FutureExt, StreamExt};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::config::Config;
use crate::error::{CallError, RemoteError, RemoteErrorKind};
use crate::exports::ExportTable;
use crate::object::{Answer, Args, Dispatch, ObjectRef, guard_handler, run_dispatch};
use crate::outbox::Outbox;
use crate::peer::Peer;
use crate::protocol::WireRef;
use crate::protocol::{self, Message};
use crate::refs::{decode_with, encode_for, reference_table};
use crate::remote_object::RemoteObject;

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle to a live (or closed) connection. Cheap to clone; when the last handle is
/// dropped (client, proxies, server bookkeeping), the connection closes.
#[derive(Clone)]
pub(crate) struct Connection {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close(Closed::Local(
            "every handle to the connection was dropped".into(),
        ));
    }
}

/// Why a connection closed.
#[derive(Debug, Clone)]
enum Closed {
    /// This side closed it.
    Local(String),
    /// The peer closed it or the transport failed: ordinary, logged at debug level.
    Transport(String),
    /// The peer broke the protocol: logged as a warning naming the peer.
    Protocol(String),
}

impl Closed {
    fn reason(&self) -> &str {
        match self {
            Closed::Local(r) | Closed::Transport(r) | Closed::Protocol(r) => r,
        }
    }
}

/// An answer as the reader hands it to the caller: the encoded value and its references,
/// already resolved (see [`crate::refs`]).
pub(crate) struct Reply {
    payload: Bytes,
    refs: Vec<ObjectRef>,
}

/// Why a frame could not be built.
enum FrameError {
    Encode(String),
    TooLarge(usize),
}

struct Calls {
    /// Calls this side made that await their answer, by request id.
    pending: HashMap<u64, oneshot::Sender<Result<Reply, CallError>>>,
    /// Set once, when the connection closes.
    closed: Option<Closed>,
}

type DisconnectCallback = Box<dyn FnOnce(&str) + Send>;

struct Hooks {
    next_id: u64,
    callbacks: HashMap<u64, DisconnectCallback>,
}

/// The state of a connection, shared by its handles and its tasks.
pub(crate) struct Shared {
    config: Config,
    peer: String,
    outbox: Outbox,
    calls: Mutex<Calls>,
    is_closed: AtomicBool,
    next_id: AtomicU64,
    exports: Mutex<ExportTable>,
    /// The peer's objects this side holds proxies of, by the peer's id.
    imports: Mutex<HashMap<u64, Weak<RemoteObject>>>,
    /// Incoming calls whose handler runs as a task, by request id.
    /// Dropping a sender cancels its handler.
    running: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    /// Incoming calls in flight (inline or as tasks).
    in_flight: AtomicUsize,
    draining: AtomicBool,
    /// Notified when `in_flight` drops to zero.
    idle: Notify,
    closed_token: CancellationToken,
    hooks: Mutex<Hooks>,
    /// The handles' shared part, to hand out new handles (for imported objects).
    handle: Mutex<Weak<Handle>>,
    started: Instant,
    /// When the last frame arrived, in microseconds since `started` (for the keepalive).
    last_received_us: AtomicU64,
}

impl Connection {
    /// Runs the handshake over `reader`/`writer` and starts the connection's tasks.
    /// `root`, if any, is exported as object [`protocol::ROOT_OBJECT`].
    pub(crate) async fn establish<R, W>(
        reader: R,
        mut writer: W,
        config: Config,
        root: Option<Arc<dyn Dispatch>>,
        peer: String,
    ) -> Result<Connection, CallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let reader = CountingReader {
            inner: reader,
            total: 0,
        };
        let mut frames = FramedRead::new(reader, codec::frame_codec(config.max_frame_length));
        let handshake =
            async {
                let mut hello = BytesMut::new();
                codec::frame_codec(config.max_frame_length)
                    .encode(Bytes::copy_from_slice(&protocol::hello()), &mut hello)
                    .map_err(|e| CallError::io("could not encode the hello", e))?;
                writer.write_all(&hello).await.map_err(|e| {
                    CallError::disconnected(format!("sending the hello failed: {e}"))
                })?;
                writer.flush().await.map_err(|e| {
                    CallError::disconnected(format!("sending the hello failed: {e}"))
                })?;
                match frames.next().await {
                    None => Err(CallError::disconnected(
                        "the peer closed the connection during the handshake",
                    )),
                    Some(Err(e)) => Err(match read_error(e, config.max_frame_length) {
                        Closed::Protocol(m) => CallError::protocol(format!("bad hello: {m}")),
                        other => CallError::disconnected(other.reason()),
                    }),
                    Some(Ok(frame)) => protocol::check_hello(&frame).map_err(CallError::protocol),
                }
            };
        match tokio::time::timeout(config.handshake_timeout, handshake).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(CallError::Timeout {
                    what: "the pbrs handshake",
                    after: config.handshake_timeout,
                });
            }
        }

        let exports = ExportTable::new(root, config.max_exported_objects);
        let keepalive = config.keepalive;
        let shared = Arc::new(Shared {
            outbox: Outbox::new(Box::new(writer), config.max_frame_length),
            config,
            peer,
            calls: Mutex::new(Calls {
                pending: HashMap::new(),
                closed: None,
            }),
            is_closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            exports: Mutex::new(exports),
            imports: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
            closed_token: CancellationToken::new(),
            hooks: Mutex::new(Hooks {
                next_id: 0,
                callbacks: HashMap::new(),
            }),
            handle: Mutex::new(Weak::new()),
            started: Instant::now(),
            last_received_us: AtomicU64::new(0),
        });
        let handle = Arc::new(Handle {
            shared: Arc::clone(&shared),
        });
        *lock(&shared.handle) = Arc::downgrade(&handle);
        tokio::spawn(Arc::clone(&shared).read_loop(frames));
        let writer_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let e = writer_shared
                .outbox
                .run_writer_task(writer_shared.config.frame_timeout)
                .await;
            let why = if e.kind() == io::ErrorKind::TimedOut {
                Closed::Protocol(e.to_string())
            } else {
                Closed::Transport(format!("writing to the peer failed: {e}"))
            };
            writer_shared.close(why);
        });
        if let Some((interval, timeout)) = keepalive {
            tokio::spawn(Arc::clone(&shared).keepalive(interval, timeout));
        }
        Ok(Connection { handle })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Stops taking calls (new ones are answered `ShuttingDown`), lets the calls in flight
    /// finish for up to `grace`, then closes.
    pub(crate) async fn drain(&self, grace: Duration) {
        let shared = self.shared();
        shared.draining.store(true, Ordering::SeqCst);
        let idle = async {
            loop {
                let notified = shared.idle.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if shared.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout_at(deadline, idle).await.is_err() {
            tracing::warn!(
                peer = %shared.peer,
                "calls still running after the {grace:?} shutdown grace period are dropped"
            );
        }
        // Let the last answers reach the socket before closing it (within the grace period).
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, shared.outbox.all_written()) => {}
            _ = shared.closed_token.cancelled() => {}
        }
        shared.close(Closed::Local("the server shut down".into()));
    }

    /// Queues a call of `method` on the peer's object `object`; `write_args` appends the
    /// encoded argument tuple to the frame (references in it are exported on this
    /// connection).
    pub(crate) fn start_call(
        &self,
        object: u64,
        method: &str,
        timeout: Option<Duration>,
        write_args: impl FnOnce(&mut BytesMut) -> Result<(), String>,
    ) -> Result<PendingCall, CallError> {
        let shared = self.shared();
        if let Some(reason) = shared.closed_reason() {
            return Err(CallError::disconnected(reason));
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let header = |refs| Message::Call {
            id,
            object,
            method: Cow::Borrowed(method),
            deadline_ms,
            refs,
        };
        let frame = shared
            .encode_frame(header, write_args)
            .map_err(|e| match e {
                FrameError::Encode(message) => CallError::Encode {
                    what: "arguments",
                    message,
                },
                FrameError::TooLarge(size) => CallError::FrameTooLarge {
                    what: "call",
                    size,
                    limit: shared.config.max_frame_length,
                },
            })?;
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = lock(&shared.calls);
            if let Some(closed) = &calls.closed {
                return Err(CallError::disconnected(closed.reason()));
            }
            calls.pending.insert(id, tx);
        }
        // Written at the latest on the first poll (or drop): calls made back to back before
        // they are awaited (`join_all`, a pipeline) go out together in one write.
        shared.send(frame, false);
        Ok(PendingCall {
            rx,
            connection: self.clone(),
            id,
            sent: false,
            done: false,
        })
    }
}

/// An outgoing call awaiting its answer (the encoded return value). Its frame is queued when
/// it is made and written out at the latest when it is first polled. Dropping it before the
/// answer arrives sends a cancel to the callee.
pub(crate) struct PendingCall {
    rx: oneshot::Receiver<Result<Reply, CallError>>,
    connection: Connection,
    id: u64,
    sent: bool,
    done: bool,
}

impl PendingCall {
    /// Decodes the answer.
    pub(crate) fn decode<R: DeserializeOwned>(&self, reply: Reply) -> Result<R, CallError> {
        let limit = self.connection.shared().config.max_frame_length;
        decode_with(reply.refs, || codec::decode(&reply.payload, limit))
            .map_err(|message| CallError::Decode { message })
    }
}

impl Future for PendingCall {
    type Output = Result<Reply, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.sent {
            self.sent = true;
            self.connection.shared().flush();
        }
        let result = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(result)) => result,
            Poll::Ready(Err(_)) => Err(CallError::disconnected(
                self.connection
                    .shared()
                    .closed_reason()
                    .unwrap_or_else(|| "the connection closed".into()),
            )),
        };
        self.done = true;
        Poll::Ready(result)
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let shared = self.connection.shared();
        let was_pending = lock(&shared.calls).pending.remove(&self.id).is_some();
        if was_pending {
            shared.send_message(&Message::Cancel { id: self.id }, true);
        }
    }
}

/// Counts an incoming call in flight until dropped (also when its task is aborted).
struct InFlight {
    shared: Arc<Shared>,
    id: u64,
    as_task: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.as_task {
            lock(&self.shared.running).remove(&self.id);
        }
        if self.shared.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.idle.notify_waiters();
        }
    }
}

impl Shared {
    /// The peer's address, or a description of the transport.
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// The connection's limits and timeouts.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// `None` while open; why it closed otherwise.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        if !self.is_closed.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.calls)
            .closed
            .as_ref()
            .map(|c| c.reason().to_owned())
    }

    /// Resolves once the connection is closed.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.closed_token.clone().cancelled_owned()
    }

    pub(crate) fn close_locally(&self, reason: &str) {
        self.close(Closed::Local(reason.to_owned()));
    }

    /// A handle to this connection (a new one if every other handle is gone, which means the
    /// connection is already closed).
    fn connection(self: &Arc<Self>) -> Connection {
        let handle = lock(&self.handle).upgrade().unwrap_or_else(|| {
            Arc::new(Handle {
                shared: Arc::clone(self),
            })
        });
        Connection { handle }
    }

    pub(crate) fn add_disconnect_hook(&self, callback: DisconnectCallback) -> u64 {
        let mut hooks = lock(&self.hooks);
        let id = hooks.next_id;
        hooks.next_id += 1;
        if !self.is_closed.load(Ordering::Acquire) {
            hooks.callbacks.insert(id, callback);
            return id;
        }
        drop(hooks);
        callback(&self.closed_reason().unwrap_or_default());
        id
    }

    pub(crate) fn remove_disconnect_hook(&self, id: u64) -> bool {
        lock(&self.hooks).callbacks.remove(&id).is_some()
    }

    pub(crate) fn exported_count(&self) -> usize {
        lock(&self.exports).len()
    }

    pub(crate) fn imported_count(&self) -> usize {
        lock(&self.imports)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Exports `object` (again): returns its id and counts one more reference sent.
    pub(crate) fn export(&self, object: &Arc<dyn Dispatch>) -> Result<u64, String> {
        let mut exports = lock(&self.exports);
        // Checked under the lock: `close` sets the flag before it empties the table, so an
        // object can never slip into the table of a closed connection.
        if self.is_closed.load(Ordering::Acquire) {
            return Err("the connection is closed".into());
        }
        exports
            .export(object)
            .map_err(|e| format!("{e} (connection to {})", self.peer))
    }

    /// The peer dropped `count` references to exported object `id` (or an encode that sent
    /// them failed): release it when none are left.
    pub(crate) fn release_sent(&self, id: u64, count: u64) {
        let released = lock(&self.exports).release(id, count);
        // The object's Drop runs here, outside the lock.
        drop(released);
    }

    /// The local object this side exported as `id`.
    pub(crate) fn exported(&self, id: u64) -> Option<Arc<dyn Dispatch>> {
        lock(&self.exports).get(id)
    }

    /// Resolves the reference table of a frame that just arrived.
    fn resolve(self: &Arc<Self>, table: Vec<WireRef>) -> Result<Vec<ObjectRef>, String> {
        if table.is_empty() {
            return Ok(Vec::new());
        }
        table
            .into_iter()
            .map(|wire| match wire {
                WireRef::SenderExports { id, interface } => Ok(self.import(id, interface)),
                WireRef::ReceiverExports(id) => self
                    .exported(id)
                    .map(ObjectRef::from_dispatch)
                    .ok_or_else(|| {
                        format!("the peer sent back object {id}, which this side does not export")
                    }),
            })
            .collect()
    }

    /// Encodes one frame: the header `header(refs)`, then the payload `write_payload` writes.
    /// References in the payload are exported on this connection and listed in the header;
    /// if anything fails, those exports are undone.
    fn encode_frame<'m>(
        self: &Arc<Self>,
        header: impl Fn(Vec<WireRef>) -> Message<'m>,
        write_payload: impl FnOnce(&mut BytesMut) -> Result<(), String>,
    ) -> Result<Bytes, FrameError> {
        let limit = self.config.max_frame_length;
        encode_for(self, || {
            let mut frame = BytesMut::with_capacity(64);
            codec::encode_into(&header(Vec::new()), &mut frame).map_err(FrameError::Encode)?;
            let header_len = frame.len();
            write_payload(&mut frame).map_err(FrameError::Encode)?;
            let table = reference_table();
            if !table.is_empty() {
                // Rare: rewrite the header with the table the payload produced.
                let mut with_refs = BytesMut::with_capacity(frame.len() + 10 * table.len());
                codec::encode_into(&header(table), &mut with_refs).map_err(FrameError::Encode)?;
                with_refs.extend_from_slice(&frame[header_len..]);
                frame = with_refs;
            }
            if frame.len() > limit {
                return Err(FrameError::TooLarge(frame.len()));
            }
            Ok(frame.freeze())
        })
    }

    /// A proxy for the peer's object `id`, just received: one more reference to count.
    pub(crate) fn import(self: &Arc<Self>, id: u64, interface: String) -> ObjectRef {
        if id == protocol::ROOT_OBJECT {
            return ObjectRef::remote(RemoteObject::root(self.connection(), Some(interface)));
        }
        let mut imports = lock(&self.imports);
        if let Some(existing) = imports.get(&id).and_then(Weak::upgrade) {
            existing.received_again();
            return ObjectRef::remote(existing);
        }
        let object = RemoteObject::imported(self.connection(), id, interface);
        imports.insert(id, Arc::downgrade(&object));
        ObjectRef::remote(object)
    }

    /// The last proxy of `object` is gone: tell the peer how many references it dropped.
    pub(crate) fn release_import(&self, object: &RemoteObject, count: u64) {
        {
            let mut imports = lock(&self.imports);
            // A newer proxy may already stand in this id's place: leave that one alone.
            if imports
                .get(&object.id())
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), object))
            {
                imports.remove(&object.id());
            }
        }
        if self.is_closed.load(Ordering::Acquire) || count == 0 {
            return;
        }
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.send_message(
            &Message::Decref {
                object: object.id(),
                count,
            },
            true,
        );
    }

    /// Queues a frame and, if `flush_now`, writes it out now.
    fn send(&self, frame: Bytes, flush_now: bool) {
        if let Err(e) = self.outbox.queue(frame) {
            // Only an oversize frame fails to queue, and callers check the size first.
            tracing::error!(peer = %self.peer, "could not queue a frame: {e}");
            return;
        }
        if flush_now {
            self.flush();
        }
    }

    fn send_message(&self, message: &Message<'_>, flush_now: bool) {
        match codec::encode(message) {
            Ok(frame) => self.send(frame, flush_now),
            Err(e) => tracing::error!(peer = %self.peer, "could not encode a message: {e}"),
        }
    }

    fn flush(&self) {
        if let Err(e) = self.outbox.flush() {
            self.close(Closed::Transport(format!(
                "writing to the peer failed: {e}"
            )));
        }
    }

    fn close(&self, why: Closed) {
        let pending = {
            let mut calls = lock(&self.calls);
            if calls.closed.is_some() {
                return;
            }
            calls.closed = Some(why.clone());
            self.is_closed.store(true, Ordering::Release);
            std::mem::take(&mut calls.pending)
        };
        match &why {
            Closed::Protocol(r) => {
                tracing::warn!(peer = %self.peer, "closing the connection: {r}")
            }
            Closed::Transport(r) | Closed::Local(r) => {
                tracing::debug!(peer = %self.peer, "connection closed: {r}")
            }
        }
        for (_, tx) in pending {
            let _ = tx.send(Err(CallError::disconnected(why.reason())));
        }
        // Dropping the senders cancels the handlers.
        drop(std::mem::take(&mut *lock(&self.running)));
        let exports = lock(&self.exports).clear();
        // Exported objects are released here, outside the lock.
        drop(exports);
        let _ = self.outbox.flush();
        self.outbox.close();
        self.closed_token.cancel();
        let callbacks = std::mem::take(&mut lock(&self.hooks).callbacks);
        for (_, callback) in callbacks {
            callback(why.reason());
        }
    }

    fn note_received(&self) {
        let us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_received_us.store(us, Ordering::Relaxed);
    }

    /// Pings the peer after `interval` without a frame from it, and closes the connection if
    /// nothing arrives within `timeout` more: a peer that stopped reading or answering (a
    /// frozen process, a half-open TCP connection) is detected within `interval + timeout`.
    async fn keepalive(self: Arc<Self>, interval: Duration, timeout: Duration) {
        let mut nonce = 0;
        loop {
            let seen = self.last_received_us.load(Ordering::Relaxed);
            let last_frame = self.started + Duration::from_micros(seen);
            tokio::select! {
                _ = self.closed_token.cancelled() => return,
                _ = tokio::time::sleep_until((last_frame + interval).into()) => {}
            }
            if self.last_received_us.load(Ordering::Relaxed) != seen {
                continue;
            }
            nonce += 1;
            self.send_message(&Message::Ping { nonce }, true);
            tokio::select! {
                _ = self.closed_token.cancelled() => return,
                _ = tokio::time::sleep_until((last_frame + interval + timeout).into()) => {}
            }
            if self.last_received_us.load(Ordering::Relaxed) == seen {
                self.close(Closed::Transport(format!(
                    "the peer sent nothing for {:?}, not even an answer to a keepalive ping; \
                     it is gone or frozen",
                    interval + timeout
                )));
                return;
            }
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        mut frames: FramedRead<CountingReader<R>, LengthDelimitedCodec>,
    ) {
        let limit = self.config.max_frame_length;
        // Bytes of the stream that made up complete frames: whatever was read beyond them is
        // a frame on its way (perhaps only its length header, which the codec has consumed).
        let mut complete = frames.get_ref().total - frames.read_buffer().len() as u64;
        let mut received = false;
        // Registered once, not on every wait.
        let closed = self.closed_token.clone();
        let mut closed = std::pin::pin!(closed.cancelled());
        let why = loop {
            let next = match frames.next().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing more to read right now: send the answers of this burst, and note
                    // the time for the keepalive once per burst, not per frame.
                    if std::mem::take(&mut received) {
                        self.note_received();
                    }
                    self.flush();
                    let frame_timeout = self.config.frame_timeout;
                    // The frame timer starts when the first bytes of a frame are buffered,
                    // whenever that happens during this wait.
                    let mut stall: Option<Pin<Box<tokio::time::Sleep>>> = None;
                    let next = std::future::poll_fn(|cx| {
                        if let Poll::Ready(next) = frames.poll_next_unpin(cx) {
                            return Poll::Ready(Ok(next));
                        }
                        if frames.get_ref().total == complete {
                            return Poll::Pending;
                        }
                        let timer = stall
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(frame_timeout)));
                        match timer.as_mut().poll(cx) {
                            Poll::Ready(()) => Poll::Ready(Err(Closed::Protocol(format!(
                                "a frame took longer than {frame_timeout:?} to arrive"
                            )))),
                            Poll::Pending => Poll::Pending,
                        }
                    });
                    tokio::select! {
                        biased;
                        _ = &mut closed => return,
                        next = next => match next {
                            Ok(next) => next,
                            Err(why) => break why,
                        },
                    }
                }
            };
            match next {
                None => break Closed::Transport("the peer closed the connection".into()),
                Some(Err(e)) => break read_error(e, limit),
                Some(Ok(frame)) => {
                    complete += 4 + frame.len() as u64;
                    received = true;
                    if let Err(why) = self.handle_frame(frame.freeze()) {
                        break why;
                    }
                }
            }
            if self.outbox.backlog() >= 64 * 1024 {
                self.flush();
            }
        };
        self.close(why);
    }

    fn handle_frame(self: &Arc<Self>, frame: Bytes) -> Result<(), Closed> {
        let limit = self.config.max_frame_length;
        let (message, used) = codec::decode_prefix::<Message<'static>>(&frame, limit)
            .map_err(|e| Closed::Protocol(format!("undecodable message: {e}")))?;
        let payload = frame.slice(used..);
        match message {
            Message::Call {
                id,
                object,
                method,
                deadline_ms,
                refs,
            } => match self.resolve(refs) {
                Ok(refs) => {
                    self.incoming_call(id, object, method.into_owned(), deadline_ms, payload, refs)
                }
                Err(message) => self.answer_error(id, RemoteErrorKind::BadArguments, message),
            },
            Message::Answer { id, refs } => {
                // Resolved even when nobody waits for the answer any more, so that the
                // references in it are counted, and released again.
                let reply = self
                    .resolve(refs)
                    .map(|refs| Reply { payload, refs })
                    .map_err(|message| CallError::Decode { message });
                self.complete(id, reply)
            }
            Message::Error { id, error } => self.complete(id, Err(error.into())),
            Message::Cancel { id } => {
                // Dropping the sender cancels the handler.
                drop(lock(&self.running).remove(&id));
            }
            Message::Decref { object, count } => self.release_sent(object, u64::from(count)),
            Message::Ping { nonce } => self.send_message(&Message::Pong { nonce }, false),
            Message::Pong { .. } => {}
        }
        Ok(())
    }

    fn complete(&self, id: u64, result: Result<Reply, CallError>) {
        let tx = lock(&self.calls).pending.remove(&id);
        // No entry: the caller gave up on the call (cancelled it); drop the answer.
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    fn incoming_call(
        self: &Arc<Self>,
        id: u64,
        object: u64,
        method: String,
        deadline_ms: Option<u64>,
        args: Bytes,
        refs: Vec<ObjectRef>,
    ) {
        if self.draining.load(Ordering::SeqCst) {
            return self.answer_error(
                id,
                RemoteErrorKind::ShuttingDown,
                "the server is shutting down and takes no new calls; retry on another server"
                    .into(),
            );
        }
        let Some(target) = self.exported(object) else {
            return self.answer_error(
                id,
                RemoteErrorKind::NoSuchObject,
                format!(
                    "no object {object} is exported on this connection (it was never handed \
                     out here, or it has been released)"
                ),
            );
        };
        // Backpressure without ever stopping to read (two peers that both stopped reading
        // while their outboxes were full would wait for each other for ever): while the
        // answers already queued for the peer exceed one frame, new calls are refused.
        let backlog = self.outbox.backlog();
        if backlog > self.config.max_frame_length {
            return self.answer_error(
                id,
                RemoteErrorKind::Overloaded,
                format!(
                    "{backlog} bytes are waiting to be sent on this connection; read the \
                     answers of earlier calls before sending more"
                ),
            );
        }
        let max = self.config.max_in_flight_calls;
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= max {
            if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.idle.notify_waiters();
            }
            return self.answer_error(
                id,
                RemoteErrorKind::Overloaded,
                format!(
                    "{max} calls are already running on this connection (the server's limit); \
                     wait for answers before sending more"
                ),
            );
        }
        let mut in_flight = InFlight {
            shared: Arc::clone(self),
            id,
            as_task: false,
        };
        let limit = self.config.max_frame_length;
        let started = decode_with(refs, || {
            run_dispatch(target.as_ref(), &method, Args::new(&args, limit))
        });
        let handler = match started {
            Ok(handler) => handler,
            Err(e) => return self.answer(id, Err(e), false),
        };
        let handler = guard_handler(target.interface(), method, handler);
        let handler = match deadline_ms.map(Duration::from_millis) {
            None => Either::Left(handler),
            Some(deadline) => Either::Right(Box::pin(async move {
                tokio::time::timeout(deadline, handler)
                    .await
                    .unwrap_or_else(|_| {
                        Err(RemoteError::new(
                            RemoteErrorKind::DeadlineExceeded,
                            format!("the caller's deadline of {deadline:?} passed"),
                        ))
                    })
            })),
        };
        let mut handler = Peer::new(Arc::clone(self)).scope(handler);
        // Most handlers finish without waiting: answer them without a task switch.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(result) = Pin::new(&mut handler).poll(&mut cx) {
            self.answer(id, result, false);
            drop(in_flight);
            return;
        }
        in_flight.as_task = true;
        let shared = Arc::clone(self);
        // Register the cancel handle before spawning, and do not hold the lock across
        // `spawn`: on a runtime that is shutting down, `spawn` drops the future on the spot,
        // and `InFlight::drop` takes this lock.
        let (cancel, cancelled) = oneshot::channel::<()>();
        lock(&self.running).insert(id, cancel);
        tokio::spawn(async move {
            let result = tokio::select! {
                biased;
                // The sender was dropped: a Cancel from the caller, or the connection closed.
                _ = cancelled => None,
                // The connection closed, perhaps before the cancel handle was registered.
                _ = shared.closed_token.cancelled() => None,
                result = handler => Some(result),
            };
            // Queue the answer, free the slot, then write: a caller that sees the answer can
            // make its next call at once, and a drain that sees no call in flight flushes it.
            if let Some(result) = result {
                // A peer that does not read cannot make answers pile up: each waits (holding
                // its in-flight slot) until the queue is below one frame again.
                while shared.outbox.backlog() > shared.config.max_frame_length {
                    tokio::select! {
                        _ = shared.closed_token.cancelled() => return,
                        _ = shared.outbox.all_written() => {}
                    }
                }
                shared.answer(id, result, false);
            }
            drop(in_flight);
            shared.flush();
        });
    }

    fn answer_error(self: &Arc<Self>, id: u64, kind: RemoteErrorKind, message: String) {
        self.answer(id, Err(RemoteError::new(kind, message)), false)
    }

    /// Sends the answer of incoming call `id`; references in it are exported here.
    fn answer(self: &Arc<Self>, id: u64, result: Result<Answer, RemoteError>, flush_now: bool) {
        let error = match result {
            Ok(answer) => match self.encode_answer(id, &answer) {
                Ok(frame) => {
                    self.send(frame, flush_now);
                    // Dropped only now that its frame is queued (see `Answer`).
                    drop(answer);
                    return;
                }
                Err(message) => RemoteError::new(RemoteErrorKind::BadAnswer, message),
            },
            Err(e) => e,
        };
        self.send_message(&Message::Error { id, error }, flush_now);
    }

    fn encode_answer(self: &Arc<Self>, id: u64, answer: &Answer) -> Result<Bytes, String> {
        self.encode_frame(|refs| Message::Answer { id, refs }, |buf| answer.write(buf))
            .map_err(|e| match e {
                FrameError::Encode(message) => message,
                FrameError::TooLarge(size) => format!(
                    "the answer is {size} bytes, over the {}-byte frame limit; return less per \
                     call or raise max_frame_length on both ends",
                    self.config.max_frame_length
                ),
            })
    }
}

/// The read half of a transport, counting the bytes it has read (to tell when a frame has
/// started to arrive, see the frame timer in `read_loop`).
pub(crate) struct CountingReader<R> {
    inner: R,
    total: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.total += (buf.filled().len() - before) as u64;
        polled
    }
}

/// Classifies a read error of the frame codec.
fn read_error(e: io::Error, limit: usize) -> Closed {
    if e.kind() == io::ErrorKind::InvalidData {
        Closed::Protocol(format!(
            "the peer sent a frame over the {limit}-byte limit ({e})"
        ))
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        Closed::Protocol("the peer closed the connection in the middle of a frame".into())
    } else {
        Closed::Transport(format!("reading from the peer failed: {e}"))
    }
}
