//! Incoming calls: admission, a task per handler, and the answer.
//!
//! A call the reader routes here is refused at once (an error answer) when the connection
//! drains, the object is unknown, more than a third of the output budget is queued, or
//! `max_in_flight_calls` are running. Otherwise its arguments are decoded (with the frame's
//! references) and its handler runs **in a task of its own**: a handler that computes for a
//! long time without awaiting holds up neither other calls nor the reader (cancels, decrefs,
//! pings) as long as the runtime has another worker awake. One case is tokio's, not ours: if
//! the busy handler runs on the worker that was driving I/O while every other worker sleeps,
//! no socket is read until it yields (tokio hands the I/O driver over only when a worker
//! parks). CPU-bound work belongs on `tokio::task::spawn_blocking` (PB's `deferToThread`). The answer is encoded in that task; a panic there, in the handler or in the
//! encoding of its value, becomes a `Panicked` error answer, and the exports made for that
//! answer are rolled back.
//!
//! **One write per burst.** Every handler task spawned and not yet started counts in
//! `unstarted`, and so does the reader while it works through a burst of frames. Whoever
//! brings the count to zero flushes: the reader at the end of its burst, or the last task
//! to start (before it polls its handler, so that a busy handler never holds up answers
//! already queued). A task whose answer is ready after that flushes it itself. Pipelined calls
//! answered at once thus share one or two writes, and nothing queued waits for a slow handler.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::Either;

use super::admission::{Refusal, Ticket};
use super::caller::WithCaller;
use super::lifecycle::{Closed, lock};
use super::refctx::{EncodedFrame, FrameError, decode_with, encode_frame};
use super::shared::{Reference, Shared};
use crate::dispatch::{Answer, Args, guard_handler, panicked, run_dispatch};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::protocol::Message;

/// Holds `unstarted` above zero until dropped; the drop that brings it to zero flushes.
pub(crate) struct FlushGuard {
    shared: Arc<Shared>,
}

impl FlushGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.unstarted.fetch_add(1, Ordering::SeqCst);
        FlushGuard {
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if self.shared.unstarted.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.flush();
        }
    }
}

/// An admitted call's slot, freed when dropped (also if its task panics or is aborted).
struct Slot {
    shared: Arc<Shared>,
    ticket: Ticket,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut admission = lock(&self.shared.admission);
        if admission.finish(self.ticket) && admission.in_flight() == 0 {
            drop(admission);
            self.shared.idle.notify_waiters();
        }
    }
}

/// Answers call `id` with an error at once (a frame that cannot wait).
pub(crate) fn refuse(shared: &Shared, id: u64, kind: RemoteErrorKind, message: String) {
    let error = RemoteError::new(kind, message);
    shared.send_control(&Message::Error { id, error }, false);
}

/// A call arrived: refuse it, or start its handler. An error means the peer broke the
/// protocol (a request id already running).
pub(crate) fn incoming_call(
    shared: &Arc<Shared>,
    id: u64,
    object: u64,
    method: String,
    deadline_ms: Option<u64>,
    args: Bytes,
    refs: Vec<Reference>,
) -> Result<(), Closed> {
    let Some(target) = shared.exported(object) else {
        let message = format!(
            "no object {object} is exported on this connection (it was never handed out here, \
             or it has been released)"
        );
        refuse(shared, id, RemoteErrorKind::NoSuchObject, message);
        return Ok(());
    };
    if shared.outbox.is_busy() {
        // Backpressure without ever stopping to read (two peers that both stopped reading
        // while their outboxes were full would wait for each other for ever).
        let message = format!(
            "{} bytes are waiting to be sent on this connection; read the answers of earlier \
             calls before sending more",
            shared.outbox.backlog()
        );
        refuse(shared, id, RemoteErrorKind::Overloaded, message);
        return Ok(());
    }
    let admitted = lock(&shared.admission).admit(id);
    let (ticket, cancelled) = match admitted {
        Ok(admitted) => admitted,
        Err(Refusal::ShuttingDown) => {
            let message = "the server is shutting down and takes no new calls; retry on \
                           another server";
            refuse(shared, id, RemoteErrorKind::ShuttingDown, message.into());
            return Ok(());
        }
        Err(Refusal::Full { max }) => {
            let message = format!(
                "{max} calls are already running on this connection (the server's limit); wait \
                 for answers before sending more"
            );
            refuse(shared, id, RemoteErrorKind::Overloaded, message);
            return Ok(());
        }
        Err(Refusal::DuplicateId) => {
            return Err(Closed::Protocol(format!(
                "the peer sent call {id} while its call {id} was still running"
            )));
        }
    };
    let slot = Slot {
        shared: Arc::clone(shared),
        ticket,
    };
    let config = shared.config();
    let decoded = decode_with(refs, || {
        run_dispatch(
            target.as_ref(),
            &method,
            Args::new(&args, config.max_frame_length, config.max_decode_depth),
        )
    });
    let handler = match decoded {
        Ok(handler) => handler,
        Err(error) => {
            drop(slot);
            shared.send_control(&Message::Error { id, error }, false);
            return Ok(());
        }
    };
    let interface = target.interface();
    let handler = guard_handler(interface, method.clone(), handler);
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
    let handler = WithCaller::new(Some(Arc::clone(shared)), handler);
    let unstarted = FlushGuard::new(shared);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        // Started: flush what earlier calls queued if this was the last one waiting to start.
        drop(unstarted);
        // The cancel handle is dropped by a Cancel from the caller, or when the connection
        // closes (which cancels every admitted call, and admits none after).
        let result = tokio::select! {
            biased;
            _ = cancelled => None,
            result = handler => Some(result),
        };
        match result {
            Some(result) => answer(&shared, id, result, slot, interface, &method).await,
            None => drop(slot),
        }
    });
    Ok(())
}

/// Queues the answer of call `id` (waiting for room in the outbox), freeing the call's slot
/// under the queue's lock as the answer goes in, then writes it unless a burst is still being
/// answered (whoever ends it writes): no write can carry the answer before the slot is free
/// (a caller that sees the answer can make its next call at once), and a drain that sees no
/// call in flight finds the answer queued.
async fn answer(
    shared: &Arc<Shared>,
    id: u64,
    result: Result<Answer, RemoteError>,
    slot: Slot,
    interface: &'static str,
    method: &str,
) {
    let frame = match &result {
        Ok(answer) => encode_answer(shared, id, answer, interface, method),
        Err(error) => encode_error(shared, id, error.clone()),
    };
    let mut frame = match frame {
        Ok(frame) => frame,
        Err(error) => match encode_error(shared, id, error) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::error!(peer = %shared.peer(), "could not encode an error answer: {e:?}");
                return;
            }
        },
    };
    let mut slot = Some(slot);
    loop {
        match frame.try_queue(|| drop(slot.take())) {
            Ok(()) => break,
            Err(unqueued) => {
                frame = unqueued;
                // Let whatever is queued go out while this answer waits for room.
                shared.flush();
                tokio::select! {
                    _ = shared.lifecycle.token().cancelled() => return,
                    _ = shared.outbox.room() => {}
                }
            }
        }
    }
    // Dropped only now that its frame is queued (see `Answer`).
    drop(result);
    if shared.unstarted.load(Ordering::SeqCst) == 0 {
        shared.flush();
    }
}

fn encode_error(
    shared: &Arc<Shared>,
    id: u64,
    error: RemoteError,
) -> Result<EncodedFrame, RemoteError> {
    let message = Message::Error { id, error };
    encode_frame(shared, |_| message.clone(), |_| Ok(())).map_err(|e| {
        RemoteError::new(
            RemoteErrorKind::BadAnswer,
            format!("the error answer could not be encoded: {e:?}"),
        )
    })
}

/// Encodes the answer frame; a failure or a panic in the value's `Serialize` becomes the
/// error to answer with instead (the exports made on the way are rolled back).
fn encode_answer(
    shared: &Arc<Shared>,
    id: u64,
    answer: &Answer,
    interface: &str,
    method: &str,
) -> Result<EncodedFrame, RemoteError> {
    let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_frame(
            shared,
            |refs| Message::Answer { id, refs },
            |buf| answer.write(buf),
        )
    }));
    let limit = shared.config().max_frame_length;
    match encoded {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(FrameError::Encode(message))) => {
            Err(RemoteError::new(RemoteErrorKind::BadAnswer, message))
        }
        Ok(Err(FrameError::TooLarge(size))) => Err(RemoteError::new(
            RemoteErrorKind::BadAnswer,
            format!(
                "the answer is {size} bytes, over the {limit}-byte frame limit; return less per \
                 call or raise max_frame_length on both ends"
            ),
        )),
        Err(_) => {
            tracing::warn!(interface, method, "encoding a handler's answer panicked");
            Err(panicked(interface, method))
        }
    }
}

/// Resolves once no incoming call is in flight (or the connection closed).
pub(crate) async fn idle(shared: &Shared) {
    loop {
        let notified = shared.idle.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if lock(&shared.admission).in_flight() == 0 || shared.is_closed() {
            return;
        }
        notified.await;
    }
}
