//! A connection: one transport, calls both ways.
//!
//! After the [`handshake`] a connection runs a **reader** task ([`reader`], which hands every
//! frame to the [`router`]), a **writer** task that only steps in when the socket is full
//! (see [`crate::io::outbox`]), a task that fails the outgoing calls whose deadline passes
//! ([`deadlines`]: one timer for them all), and, if enabled, a [`keepalive`] task. Incoming
//! calls are admitted ([`admission`], [`incoming`]) and their handlers run off the reader on
//! a multi-threaded runtime ([`handlers`]); outgoing calls wait in the [`outgoing`] table
//! ([`pending_call`]). Each connection has two object tables: the objects it [`exports`] to
//! the peer and the peer's objects it [`imports`]; references travel through [`refctx`]. The
//! [`lifecycle`] closes it once: every pending outgoing call fails with `Disconnected`, every
//! running handler is dropped, every exported object is released, and the disconnect hooks
//! run. If any of its tasks ends for any reason, a panic included, the connection closes.
//!
//! Layers, each using only those before it: `lifecycle`, `outgoing`, `admission`, `exports`,
//! `imports`, `handshake` → `shared` (the state that composes them, and the values that hold a
//! connection: `Connection`, `Reference`, `RemoteObject`, `Reply`) → `caller`, `refctx` →
//! `pending_call`, `incoming` → `handlers`, `router` → `reader` → `deadlines`, `keepalive` →
//! this module, which starts it all.

pub(crate) mod admission;
pub(crate) mod caller;
pub(crate) mod deadlines;
pub(crate) mod exports;
pub(crate) mod gathered;
pub(crate) mod handlers;
pub(crate) mod handshake;
pub(crate) mod imports;
pub(crate) mod incoming;
pub(crate) mod keepalive;
pub(crate) mod lifecycle;
pub(crate) mod outgoing;
pub(crate) mod peer_info;
pub(crate) mod pending_call;
pub(crate) mod reader;
pub(crate) mod refctx;
pub(crate) mod router;
pub(crate) mod shared;
pub(crate) mod slot;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::error::CallError;
use crate::io::budget::MemoryBudget;
use crate::io::frame_reader::FrameReader;
use crate::telemetry::ConnectionTelemetry;
use lifecycle::{Closed, lock};
pub(crate) use peer_info::PeerInfo;
use reader::CloseOnExit;
pub(crate) use shared::{Connection, Reference, RemoteObject, Shared};

/// Runs the handshake over `reader`/`writer` and starts the connection's tasks. The
/// `permanent` objects are exported at their ids (a server's root at
/// [`ROOT_OBJECT`](crate::protocol::ROOT_OBJECT)); `memory` is the budget it charges (a
/// server's, shared by all its connections).
pub(crate) async fn establish<R, W>(
    reader: R,
    mut writer: W,
    config: Config,
    permanent: Vec<(u64, Arc<dyn Dispatch>)>,
    peer: PeerInfo,
    memory: Arc<MemoryBudget>,
) -> Result<Connection, CallError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let mut frames = FrameReader::new(
        reader,
        config.max_frame_length,
        config.frame_timeout,
        Arc::clone(&memory),
    );
    handshake::handshake(&mut frames, &mut writer, &config).await?;
    let keepalive = config.keepalive;
    // Counted open for as long as its reader runs, which is until it closes.
    let telemetry = ConnectionTelemetry::open();
    frames.count_received(telemetry.received.clone());
    let handles = (telemetry.sent.clone(), Arc::clone(&telemetry.calls));
    let reader_permanent = incoming::Permanent::new(&permanent);
    let shared = Shared::new(config, peer, Box::new(writer), memory, permanent, handles);
    let connection = Connection::new(Arc::clone(&shared));
    let reader = reader::read_loop(Arc::clone(&shared), frames, reader_permanent);
    tokio::spawn(async move {
        let _open = telemetry;
        reader.await;
    });
    let writer_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        let _close = CloseOnExit {
            shared: Arc::clone(&writer_shared),
            task: "writer",
        };
        let e = writer_shared
            .outbox
            .run_writer_task(writer_shared.config().frame_timeout, || {
                lock(&writer_shared.pending).untaken()
            })
            .await;
        let why = if e.kind() == io::ErrorKind::TimedOut {
            Closed::Protocol(e.to_string())
        } else {
            Closed::Transport(format!("writing to the peer failed: {e}"))
        };
        writer_shared.close(why);
    });
    tokio::spawn(deadlines::expire_calls(Arc::clone(&shared)));
    if let Some((interval, timeout)) = keepalive {
        tokio::spawn(keepalive::keepalive(Arc::clone(&shared), interval, timeout));
    }
    Ok(connection)
}

/// Stops taking calls on `connection` (new ones are answered `ShuttingDown`), lets the calls
/// in flight finish for up to `grace`, then closes it, saying `why`.
pub(crate) async fn drain(connection: &Connection, grace: Duration, why: &str) {
    let shared = connection.shared();
    lifecycle::lock(&shared.admission).drain();
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, incoming::idle(shared))
        .await
        .is_err()
    {
        tracing::warn!(
            peer = %shared.peer(),
            "calls still running after the {grace:?} shutdown grace period are dropped"
        );
    }
    // Let the last answers reach the socket before closing it (within the grace period).
    tokio::select! {
        _ = tokio::time::timeout_at(deadline, shared.outbox.all_written()) => {}
        _ = shared.closed() => {}
    }
    shared.close_locally(why);
}
