//! A connection: one transport, calls both ways.
//!
//! After the handshake a connection runs two tasks. The **reader** reads frames and routes
//! them: an answer completes the pending call it belongs to; a call is dispatched to the
//! object it names in this connection's export table. A handler is first polled right in the
//! reader: if it finishes at once (most do), its answer is queued without a task switch;
//! otherwise it continues as a task of its own, so slow handlers never hold up the others.
//! The **writer** task only steps in when the socket is full (see [`crate::outbox`]).
//!
//! Incoming calls in flight are bounded ([`Config::max_in_flight_calls`]); a call beyond the
//! bound is answered `Overloaded` at once. When the connection closes, for whatever reason,
//! every pending outgoing call fails with [`CallError::Disconnected`], every running handler
//! is dropped, and the export table is emptied.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{Encoder, FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::config::Config;
use crate::error::{CallError, RemoteError, RemoteErrorKind};
use crate::object::{Args, Dispatch, HandlerFuture, run_dispatch};
use crate::outbox::Outbox;
use crate::protocol::{self, Message};

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

struct Calls {
    /// Calls this side made that await their answer, by request id.
    pending: HashMap<u64, oneshot::Sender<Result<Bytes, CallError>>>,
    /// Set once, when the connection closes.
    closed: Option<Closed>,
}

struct Shared {
    config: Config,
    peer: String,
    outbox: Outbox,
    calls: Mutex<Calls>,
    next_id: AtomicU64,
    /// Objects this side exports on this connection, by object id.
    exports: Mutex<HashMap<u64, Arc<dyn Dispatch>>>,
    /// Incoming calls whose handler runs as a task, by request id.
    running: Mutex<HashMap<u64, AbortHandle>>,
    /// Incoming calls in flight (inline or as tasks).
    in_flight: AtomicUsize,
    draining: AtomicBool,
    /// Notified when `in_flight` drops to zero.
    idle: Notify,
    closed_token: CancellationToken,
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

        let mut exports = HashMap::new();
        if let Some(root) = root {
            exports.insert(protocol::ROOT_OBJECT, root);
        }
        let shared = Arc::new(Shared {
            outbox: Outbox::new(Box::new(writer), config.max_frame_length),
            config,
            peer,
            calls: Mutex::new(Calls {
                pending: HashMap::new(),
                closed: None,
            }),
            next_id: AtomicU64::new(1),
            exports: Mutex::new(exports),
            running: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            idle: Notify::new(),
            closed_token: CancellationToken::new(),
        });
        tokio::spawn(Arc::clone(&shared).read_loop(frames));
        let writer_shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let e = writer_shared.outbox.run_writer_task().await;
            writer_shared.close(Closed::Transport(format!(
                "writing to the peer failed: {e}"
            )));
        });
        Ok(Connection {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// The peer's address, or a description of the transport.
    pub(crate) fn peer(&self) -> &str {
        &self.handle.shared.peer
    }

    pub(crate) fn config(&self) -> &Config {
        &self.handle.shared.config
    }

    /// `None` while open; why it closed otherwise.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        lock(&self.handle.shared.calls)
            .closed
            .as_ref()
            .map(|c| c.reason().to_owned())
    }

    /// Resolves once the connection is closed.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.handle.shared.closed_token.clone().cancelled_owned()
    }

    /// Closes the connection now: pending calls fail, handlers are dropped.
    pub(crate) fn close(&self, reason: &str) {
        self.handle.shared.close(Closed::Local(reason.to_owned()));
    }

    /// Stops taking calls (new ones are answered `ShuttingDown`), lets the calls in flight
    /// finish for up to `grace`, then closes.
    pub(crate) async fn drain(&self, grace: std::time::Duration) {
        let shared = &self.handle.shared;
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
        let finished = tokio::time::timeout(grace, idle).await.is_ok();
        if !finished {
            tracing::warn!(
                peer = %shared.peer,
                "calls still running after the {grace:?} shutdown grace period are dropped"
            );
        }
        let _ = shared.outbox.flush();
        shared.close(Closed::Local("the server shut down".into()));
    }

    /// Sends a call of `method` on the peer's object `object`; `write_args` appends the
    /// encoded argument tuple to the frame.
    pub(crate) fn start_call(
        &self,
        object: u64,
        method: &str,
        write_args: impl FnOnce(&mut BytesMut) -> Result<(), CallError>,
    ) -> Result<PendingCall, CallError> {
        let shared = &self.handle.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = BytesMut::with_capacity(64);
        let header = Message::Call {
            id,
            object,
            method: Cow::Borrowed(method),
            deadline_ms: None,
        };
        codec::encode_into(&header, &mut frame).map_err(|message| CallError::Encode {
            what: "call header",
            message,
        })?;
        write_args(&mut frame)?;
        let limit = shared.config.max_frame_length;
        if frame.len() > limit {
            return Err(CallError::FrameTooLarge {
                what: "call",
                size: frame.len(),
                limit,
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut calls = lock(&shared.calls);
            if let Some(closed) = &calls.closed {
                return Err(CallError::disconnected(closed.reason()));
            }
            calls.pending.insert(id, tx);
        }
        // Sent on the first poll: calls made back to back (`join_all`, a pipeline) go out
        // together in one write.
        shared.send(frame.freeze(), false);
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
    rx: oneshot::Receiver<Result<Bytes, CallError>>,
    connection: Connection,
    id: u64,
    sent: bool,
    done: bool,
}

impl PendingCall {
    /// The byte limit for decoding the answer.
    pub(crate) fn decode_limit(&self) -> usize {
        self.connection.config().max_frame_length
    }
}

impl Future for PendingCall {
    type Output = Result<Bytes, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.sent {
            self.sent = true;
            self.connection.handle.shared.flush();
        }
        let result = match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(result)) => result,
            Poll::Ready(Err(_)) => Err(CallError::disconnected(
                self.connection
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
        let shared = &self.connection.handle.shared;
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
    /// Queues a frame and, unless `defer_flush`, writes it out now.
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
        let running = std::mem::take(&mut *lock(&self.running));
        for (_, task) in running {
            task.abort();
        }
        let exports = std::mem::take(&mut *lock(&self.exports));
        drop(exports);
        let _ = self.outbox.flush();
        self.outbox.close();
        self.closed_token.cancel();
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        mut frames: FramedRead<R, LengthDelimitedCodec>,
    ) {
        let limit = self.config.max_frame_length;
        let why = loop {
            let next = match frames.next().now_or_never() {
                Some(next) => next,
                None => {
                    // Nothing more to read right now: send the answers of this burst.
                    self.flush();
                    let partial = !frames.read_buffer().is_empty();
                    let frame_timeout = self.config.frame_timeout;
                    let next = async {
                        if partial {
                            tokio::time::timeout(frame_timeout, frames.next())
                                .await
                                .map_err(|_| {
                                    Closed::Protocol(format!(
                                        "a frame took longer than {frame_timeout:?} to arrive"
                                    ))
                                })
                        } else {
                            Ok(frames.next().await)
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = self.closed_token.cancelled() => return,
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
                    if let Err(why) = self.handle_frame(frame.freeze()) {
                        break why;
                    }
                }
            }
            if self.outbox.queued_len() >= 64 * 1024 {
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
                id, object, method, ..
            } => self.incoming_call(id, object, &method, payload),
            Message::Answer { id } => self.complete(id, Ok(payload)),
            Message::Error { id, error } => self.complete(id, Err(error.into())),
            Message::Cancel { id } => {
                let task = lock(&self.running).remove(&id);
                if let Some(task) = task {
                    task.abort();
                }
            }
            Message::Decref { .. } => {
                // Only the root object is exported so far, and it is never released.
            }
            Message::Ping { nonce } => self.send_message(&Message::Pong { nonce }, false),
            Message::Pong { .. } => {}
        }
        Ok(())
    }

    fn complete(&self, id: u64, result: Result<Bytes, CallError>) {
        let tx = lock(&self.calls).pending.remove(&id);
        // No entry: the caller gave up on the call (cancelled it); drop the answer.
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    fn incoming_call(self: &Arc<Self>, id: u64, object: u64, method: &str, args: Bytes) {
        if self.draining.load(Ordering::SeqCst) {
            return self.answer_error(
                id,
                RemoteErrorKind::ShuttingDown,
                "the server is shutting down and takes no new calls; retry on another server"
                    .into(),
            );
        }
        let target = lock(&self.exports).get(&object).cloned();
        let Some(target) = target else {
            return self.answer_error(
                id,
                RemoteErrorKind::NoSuchObject,
                format!(
                    "no object {object} is exported on this connection (it was never handed \
                     out here, or it has been released)"
                ),
            );
        };
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
        let mut handler: HandlerFuture = match run_dispatch(
            target.as_ref(),
            method,
            Args::new(&args, self.config.max_frame_length),
        ) {
            Ok(f) => f,
            Err(e) => return self.answer(id, Err(e), false),
        };
        // Most handlers finish without waiting: answer them without a task switch.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(result) = handler.as_mut().poll(&mut cx) {
            drop(in_flight);
            return self.answer(id, result, false);
        }
        in_flight.as_task = true;
        let shared = Arc::clone(self);
        let mut running = lock(&self.running);
        let task = tokio::spawn(async move {
            let result = handler.await;
            shared.answer(id, result, true);
            drop(in_flight);
        });
        running.insert(id, task.abort_handle());
    }

    fn answer_error(&self, id: u64, kind: RemoteErrorKind, message: String) {
        self.answer(id, Err(RemoteError::new(kind, message)), false)
    }

    /// Sends the answer of incoming call `id`.
    fn answer(&self, id: u64, result: Result<Bytes, RemoteError>, flush_now: bool) {
        let error = match result {
            Ok(value) => {
                let mut frame = BytesMut::with_capacity(16 + value.len());
                match codec::encode_into(&Message::Answer { id }, &mut frame) {
                    Ok(()) => {
                        frame.extend_from_slice(&value);
                        let limit = self.config.max_frame_length;
                        if frame.len() <= limit {
                            return self.send(frame.freeze(), flush_now);
                        }
                        RemoteError::new(
                            RemoteErrorKind::BadAnswer,
                            format!(
                                "the answer is {} bytes, over the {limit}-byte frame limit; \
                                 return less per call or raise max_frame_length on both ends",
                                frame.len()
                            ),
                        )
                    }
                    Err(e) => RemoteError::new(RemoteErrorKind::BadAnswer, e),
                }
            }
            Err(e) => e,
        };
        self.send_message(&Message::Error { id, error }, flush_now);
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
