//! [`Shared`]: the state of one connection, shared by its handles and its tasks, and
//! [`Connection`], the handle whose last drop closes it.
//!
//! `Shared` composes the plain tables (pending calls, admission, exports, imports), the
//! lifecycle and the outbox, and offers the operations the layers above build on: queue a
//! frame (one that can wait, or one that cannot), flush, export and release objects, close.
//! It knows nothing of frames' meaning beyond the few control messages it sends itself.
//!
//! The values that hold a connection live here too, because the connection's state holds
//! them in turn (a pending call's [`Reply`] holds [`Reference`]s, a [`RemoteObject`] holds its
//! [`Connection`]): every reference that arrives becomes one `RemoteObject` (shared by the
//! clones of its `ObjectRef`); the import table counts them, and when the last one of an
//! object is dropped the peer is sent a decref (see `imports`). It can be sent back only over
//! the connection it came from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;
use std::time::Duration;

use std::fmt;

use bytes::Bytes;
use metrics::Counter;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::admission::Admission;
use super::exports::ExportTable;
use super::imports::ImportTable;
use super::lifecycle::{Closed, DisconnectCallback, Lifecycle, lock};
use super::outgoing::PendingTable;
use super::peer_info::{Login, PeerInfo};
use crate::codec::{self, BuiltFrame};
use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::error::CallError;
use crate::io::budget::MemoryBudget;
use crate::io::outbox::{Outbox, Sink};
use crate::lock::SpinLock;
use crate::protocol::{self, Message, WireRef};
use crate::telemetry::CallMetrics;

/// An answer as the reader hands it to the caller: the encoded value and its references,
/// already resolved (see `refctx`).
pub(crate) struct Reply {
    pub(crate) payload: Bytes,
    pub(crate) refs: Vec<Reference>,
    /// When the burst of frames it came in began to be read (the end of its call).
    pub(crate) arrived: tokio::time::Instant,
}

/// A reference to an object: a local one, or one the peer of a connection exported.
#[derive(Clone)]
pub(crate) enum Reference {
    Local(Arc<dyn Dispatch>),
    Remote(Arc<RemoteObject>),
}

impl Reference {
    /// How this reference is written for the connection `shared` (a local object is
    /// exported on it, pending until its frame is queued).
    pub(crate) fn to_wire(&self, shared: &Arc<Shared>) -> Result<WireRef, String> {
        match self {
            Reference::Local(d) => shared.export(d).map(|id| WireRef::SenderExports {
                id,
                interface: d.interface().to_owned(),
            }),
            Reference::Remote(r) => r.to_wire(shared),
        }
    }
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

impl Connection {
    /// The first handle of a connection whose state is `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> Connection {
        let handle = Arc::new(Handle {
            shared: Arc::clone(&shared),
        });
        *lock(&shared.handle) = Arc::downgrade(&handle);
        Connection { handle }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }
}

/// The state of a connection, shared by its handles and its tasks.
pub(crate) struct Shared {
    config: Config,
    peer: PeerInfo,
    /// Who the peer logged in as (kept for the `login` module, above this one).
    pub(crate) login: Login,
    pub(crate) outbox: Outbox,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) pending: SpinLock<PendingTable<Reply>>,
    next_id: AtomicU64,
    exports: Mutex<ExportTable>,
    imports: Mutex<ImportTable>,
    pub(crate) admission: SpinLock<Admission>,
    /// Notified when the last incoming call in flight finishes.
    pub(crate) idle: Notify,
    /// The metric handles its calls are counted in.
    pub(crate) calls: Arc<CallMetrics>,
    /// A call was registered with the earliest deadline (see `deadlines`).
    pub(crate) deadline_moved: Notify,
    /// The handles' shared part, to hand out new handles (for imported objects).
    handle: Mutex<Weak<Handle>>,
    started: Instant,
    /// When the last frame arrived, in microseconds since `started` (for the keepalive).
    last_received_us: AtomicU64,
}

impl Shared {
    /// The state of a connection to `peer` writing to `sink`, charging `memory`; the
    /// `permanent` objects are exported at their ids for as long as it lives (a server's
    /// root at [`ROOT_OBJECT`](crate::protocol::ROOT_OBJECT)).
    pub(crate) fn new(
        config: Config,
        peer: PeerInfo,
        sink: Sink,
        memory: Arc<MemoryBudget>,
        permanent: Vec<(u64, Arc<dyn Dispatch>)>,
        (sent, calls): (Counter, Arc<CallMetrics>),
    ) -> Arc<Shared> {
        Arc::new(Shared {
            outbox: Outbox::new(
                sink,
                config.max_frame_length,
                config.effective_output_budget(),
                memory,
                sent,
            ),
            exports: Mutex::new(ExportTable::new(permanent, config.max_exported_objects)),
            admission: SpinLock::new(Admission::new(config.max_in_flight_calls)),
            config,
            peer,
            login: Login::default(),
            lifecycle: Lifecycle::new(),
            pending: SpinLock::new(PendingTable::default()),
            calls,
            deadline_moved: Notify::new(),
            next_id: AtomicU64::new(1),
            imports: Mutex::new(ImportTable::default()),
            idle: Notify::new(),
            handle: Mutex::new(Weak::new()),
            started: Instant::now(),
            last_received_us: AtomicU64::new(0),
        })
    }

    /// The peer's address, or a description of the transport.
    pub(crate) fn peer(&self) -> &str {
        &self.peer.addr
    }

    /// What the transport says of the peer.
    pub(crate) fn peer_info(&self) -> &PeerInfo {
        &self.peer
    }

    /// The connection's limits and timeouts.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// A request id for a new outgoing call.
    pub(crate) fn next_request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Request ids given out so far (they count up from 1).
    pub(crate) fn request_ids_given(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed) - 1
    }

    /// `None` while open; why it closed otherwise.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        self.lifecycle.reason()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lifecycle.is_closed()
    }

    /// Once closed, `afterword` follows the reason calls on the connection fail with.
    pub(crate) fn set_afterword(&self, afterword: &str) {
        self.lifecycle.set_afterword(afterword);
    }

    /// Resolves once the connection is closed.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.lifecycle.closed()
    }

    pub(crate) fn close_locally(&self, reason: &str) {
        self.close(Closed::Local(reason.to_owned()));
    }

    /// A handle to this connection (a new one if every other handle is gone, which means the
    /// connection is already closed).
    pub(crate) fn connection(self: &Arc<Self>) -> Connection {
        let handle = lock(&self.handle).upgrade().unwrap_or_else(|| {
            Arc::new(Handle {
                shared: Arc::clone(self),
            })
        });
        Connection { handle }
    }

    pub(crate) fn add_disconnect_hook(&self, callback: DisconnectCallback) -> u64 {
        self.lifecycle.add_hook(callback)
    }

    pub(crate) fn remove_disconnect_hook(&self, id: u64) -> bool {
        self.lifecycle.remove_hook(id)
    }

    pub(crate) fn exported_count(&self) -> usize {
        lock(&self.exports).len()
    }

    pub(crate) fn imported_count(&self) -> usize {
        lock(&self.imports).len()
    }

    /// Bytes queued for the peer and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.outbox.backlog()
    }

    /// Incoming calls in flight.
    pub(crate) fn calls_in_flight(&self) -> usize {
        lock(&self.admission).in_flight()
    }

    /// Exports `object` (again): returns its id and counts one more reference pending until
    /// [`commit_export`](Shared::commit_export).
    pub(crate) fn export(&self, object: &Arc<dyn Dispatch>) -> Result<u64, String> {
        let mut exports = lock(&self.exports);
        // Checked under the lock: `close` sets the flag before it empties the table, so an
        // object can never slip into the table of a closed connection.
        if self.is_closed() {
            return Err("the connection is closed".into());
        }
        exports
            .export(object)
            .map_err(|e| format!("{e} (connection to {})", self.peer.addr))
    }

    /// The frame carrying pending references to `ids` is being queued.
    pub(crate) fn commit_exports(&self, ids: &[u64]) {
        let mut exports = lock(&self.exports);
        for &id in ids {
            exports.commit(id);
        }
    }

    /// The frame carrying pending references to `ids` will never be queued.
    pub(crate) fn roll_back_exports(&self, ids: &[u64]) {
        let released: Vec<_> = {
            let mut exports = lock(&self.exports);
            ids.iter().filter_map(|&id| exports.roll_back(id)).collect()
        };
        // The objects' Drop runs here, outside the lock.
        drop(released);
    }

    /// The peer dropped `count` references to exported object `id`: release it when none are
    /// left.
    pub(crate) fn release_sent(&self, id: u64, count: u64) {
        let released = lock(&self.exports).release(id, count);
        drop(released);
    }

    /// The local object this side exported as `id`, if the peer may call it.
    pub(crate) fn exported(&self, id: u64) -> Option<Arc<dyn Dispatch>> {
        lock(&self.exports).get(id)
    }

    /// A reference to the peer's object `id` arrived.
    pub(crate) fn note_import(&self, id: u64) {
        lock(&self.imports).received(id);
    }

    /// A proxy of the peer's object `id` was dropped: when it was the last, tell the peer
    /// how many references it dropped.
    pub(crate) fn release_import(&self, id: u64) {
        let Some(count) = lock(&self.imports).dropped(id) else {
            return;
        };
        if self.is_closed() || count == 0 {
            return;
        }
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        // With the decrefs of other proxies dropped with it, in one write after the burst.
        self.send_control(&Message::Decref { object: id, count }, false);
        self.outbox.flush_after_burst();
    }

    /// Queues a frame that cannot wait; one that would take the queue past the output budget
    /// closes the connection (the peer sends and does not read).
    pub(crate) fn queue_control(&self, frame: BuiltFrame, flush_now: bool) {
        if let Err(overflow) = self.outbox.queue(frame) {
            self.close(Closed::Protocol(overflow.to_string()));
            return;
        }
        if flush_now {
            self.flush();
        }
    }

    /// Encodes and queues a control message (error answer, pong, cancel, decref).
    pub(crate) fn send_control(&self, message: &Message<'_>, flush_now: bool) {
        match codec::build_frame(|frame| codec::encode_header(message, frame)) {
            (Ok(()), frame) => self.queue_control(frame, flush_now),
            (Err(e), _) => {
                tracing::error!(peer = %self.peer.addr, "could not encode a message: {e}")
            }
        }
    }

    /// Writes what is queued, if no one else is writing.
    pub(crate) fn flush(&self) {
        if let Err(e) = self.outbox.flush() {
            self.close(Closed::Transport(format!(
                "writing to the peer failed: {e}"
            )));
        }
    }

    /// Closes the connection, once: pending calls fail with `Disconnected`, handlers are
    /// cancelled, exported objects released, the transport dropped, hooks run.
    pub(crate) fn close(&self, why: Closed) {
        if !self.lifecycle.begin_close(&why) {
            return;
        }
        match &why {
            Closed::Protocol(r) => {
                tracing::warn!(peer = %self.peer.addr, "closing the connection: {r}")
            }
            Closed::Transport(r) | Closed::Local(r) => {
                tracing::debug!(peer = %self.peer.addr, "connection closed: {r}")
            }
        }
        let waiting =
            lock(&self.pending).fail_all(why.reason(), || CallError::disconnected(why.reason()));
        waiting.into_iter().for_each(Waker::wake);
        // Dropping the cancel handles stops the handlers. And no call is admitted from now on:
        // before the exports go, since the reader finds the permanent ones (the root) in its
        // own handles, not in the table (see `incoming::Permanent`).
        lock(&self.admission).cancel_all();
        self.idle.notify_waiters();
        let exports = lock(&self.exports).clear();
        // Exported objects are released here, outside the lock.
        drop(exports);
        let _ = self.outbox.flush();
        self.outbox.close();
        self.lifecycle.finish(why.reason());
    }

    /// Frames arrived at `at` (for the keepalive).
    pub(crate) fn note_received(&self, at: Instant) {
        let since = at.saturating_duration_since(self.started);
        let us = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
        self.last_received_us.store(us, Ordering::Relaxed);
    }

    /// When the last frame arrived (the start of the connection if none has).
    pub(crate) fn last_received(&self) -> Instant {
        self.started + Duration::from_micros(self.last_received_us.load(Ordering::Relaxed))
    }
}

/// An object exported by the peer, as this side holds it.
pub(crate) struct RemoteObject {
    connection: Connection,
    id: u64,
    /// Counted in the import table (every object but the peer's root).
    counted: bool,
    /// The name of its remote trait, as the peer said (unknown for a root from `Client::root`).
    interface: Option<String>,
}

impl fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "object {} of {}",
            self.id,
            self.connection.shared().peer()
        )
    }
}

impl RemoteObject {
    /// The root object of the peer of `connection` (permanent: never counted).
    pub(crate) fn root(connection: Connection, interface: Option<String>) -> Arc<RemoteObject> {
        RemoteObject::permanent(connection, protocol::ROOT_OBJECT, interface)
    }

    /// A proxy of an object the peer exports for as long as the connection lives, at a
    /// well-known id (its root, its lookup of sturdy URLs): never counted nor released.
    pub(crate) fn permanent(
        connection: Connection,
        id: u64,
        interface: Option<String>,
    ) -> Arc<RemoteObject> {
        Arc::new(RemoteObject {
            connection,
            id,
            counted: false,
            interface,
        })
    }

    /// A proxy of the peer's object `id`, whose reference just arrived (and was counted in
    /// the import table).
    pub(crate) fn imported(connection: Connection, id: u64, interface: String) -> Arc<Self> {
        Arc::new(RemoteObject {
            connection,
            id,
            counted: true,
            interface: Some(interface),
        })
    }

    /// Its id in the peer's export table.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// The connection it lives behind.
    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    pub(crate) fn same_object(&self, other: &RemoteObject) -> bool {
        self.id == other.id && Arc::ptr_eq(self.connection.shared(), other.connection.shared())
    }

    /// Written for `shared`: valid only on the connection it came from.
    pub(crate) fn to_wire(&self, shared: &Arc<Shared>) -> Result<WireRef, String> {
        if Arc::ptr_eq(self.connection.shared(), shared) {
            Ok(WireRef::ReceiverExports(self.id))
        } else {
            Err(format!(
                "a reference to an object of {} cannot be sent to {}: references are valid only \
                 on the connection they came from, and pbrs does not proxy between connections",
                self.connection.shared().peer(),
                shared.peer()
            ))
        }
    }
}

impl Drop for RemoteObject {
    fn drop(&mut self) {
        if self.counted {
            self.connection.shared().release_import(self.id);
        }
    }
}
