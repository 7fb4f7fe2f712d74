//! [`PendingCall`]: an outgoing call, from its encoded frame to its answer.
//!
//! A call is lazy like every Rust future. Its frame is encoded when it is made (so that a call
//! too large for the frame limit fails at once), but nothing is registered, queued or sent
//! before its first poll; dropped before that, it leaves no trace (the objects its arguments
//! would have exported are rolled back). On the first poll the call is registered and its
//! frame queued (waiting for room if the output budget is spent). A call alone is written at
//! once. While other calls of the connection await answers, its frame is left to the writer
//! task, which writes it after the current burst of ready tasks with every call they started
//! (a pipeline refilled as answers arrive, tasks calling in a loop). While other calls made on
//! the connection are still unpolled, the future instead yields once before writing: calls made back to back and awaited together (`join_all`,
//! `FuturesUnordered`, `buffer_unordered`) are all queued in that first round of polls and go
//! out in one write in the next. Dropped after its first poll and before its answer, the call
//! is cancelled at the callee.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use std::borrow::Cow;
use std::time::Duration;

use bytes::BytesMut;

use super::lifecycle::lock;
use super::outgoing::{Deadline, Removed};
use super::refctx::{EncodedFrame, FrameError, decode_with, encode_frame};
use super::shared::{Connection, Reply, Shared};
use crate::codec;
use crate::error::{CallError, TimeoutKind};
use crate::protocol::Message;
use crate::telemetry::{CallTelemetry, Direction, Outcome};

type Room = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An outgoing call awaiting its answer (the encoded return value).
pub(crate) struct PendingCall {
    connection: Connection,
    id: u64,
    /// The peer's object it calls.
    object: u64,
    /// The frame, until it is queued.
    frame: Option<EncodedFrame>,
    /// Waiting for room in the outbox.
    room: Option<Room>,
    /// Registered in the pending table (at the first poll), where its answer arrives.
    registered: bool,
    /// Polled at least once (its request id settled in the pending table).
    polled: bool,
    /// Other calls of the connection awaited answers at the first poll.
    others_in_flight: bool,
    /// Other calls of the connection were made and not yet polled at the first poll.
    others_unpolled: bool,
    flushed: bool,
    done: bool,
    /// The method it calls, then also its span and clock from its first poll (see
    /// [`PendingCall::start_telemetry`]); `None` once counted. The method's name is kept there
    /// only: a call's future is moved about whole, so its size counts.
    telemetry: Option<CallTelemetry>,
}

impl PendingCall {
    /// The call `id` of `object`'s `method` whose frame is `frame`, on `connection`: not
    /// registered, nothing sent.
    fn new(
        connection: Connection,
        (id, object, method): (u64, u64, Cow<'static, str>),
        frame: EncodedFrame,
    ) -> Self {
        PendingCall {
            connection,
            id,
            object,
            frame: Some(frame),
            room: None,
            registered: false,
            polled: false,
            others_in_flight: false,
            others_unpolled: false,
            flushed: false,
            done: false,
            telemetry: Some(CallTelemetry::unstarted(Direction::Outgoing, method)),
        }
    }

    /// Encodes a call of `method` on the peer's object `object`; `write_args` appends the
    /// encoded argument tuple (references in it are exported on this connection, pending
    /// until the frame is queued; with a reference in them it is called twice, see
    /// `refctx::encode_frame`). Nothing is sent before the call is first polled. An error
    /// gives the method's name back.
    pub(crate) fn start(
        connection: &Connection,
        object: u64,
        method: Cow<'static, str>,
        timeout: Option<Duration>,
        write_args: impl Fn(&mut BytesMut) -> Result<(), String>,
    ) -> Result<PendingCall, (CallError, Cow<'static, str>)> {
        let shared = connection.shared();
        if let Some(reason) = shared.closed_reason() {
            return Err((CallError::disconnected(reason), method));
        }
        let id = shared.next_request_id();
        let deadline_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let header = |refs| Message::Call {
            id,
            object,
            method: Cow::Borrowed(&*method),
            deadline_ms,
            refs,
        };
        let encoded = encode_frame(shared, header, write_args);
        if encoded.is_err() {
            // Its id will never be registered.
            lock(&shared.pending).settle_unregistered();
        }
        let frame = match encoded {
            Ok(frame) => frame,
            Err(FrameError::Encode(message)) => {
                let what = "arguments";
                return Err((CallError::Encode { what, message }, method));
            }
            Err(FrameError::TooLarge(size)) => {
                let limit = shared.config().max_frame_length;
                let what = "call";
                return Err((CallError::FrameTooLarge { what, size, limit }, method));
            }
        };
        Ok(PendingCall::new(
            connection.clone(),
            (id, object, method),
            frame,
        ))
    }

    /// Starts the span and clock of the call, sent now (the time read into `now`, unless it
    /// was already, only if the call is timed): counted in the connection's metrics when it
    /// ends ([`PendingCall::finish_telemetry`]), or `cancelled` if it is dropped before.
    fn start_telemetry(&mut self, now: &mut Option<Instant>) {
        let shared = self.connection.shared();
        let site = (self.object, shared.peer(), self.id);
        let clock = || *now.get_or_insert_with(Instant::now);
        self.telemetry = self
            .telemetry
            .take()
            .and_then(|telemetry| telemetry.begin(site, clock, &shared.calls));
    }

    /// The call ended with `outcome`, at `end` (or now): counted.
    pub(crate) fn finish_telemetry(&mut self, outcome: Outcome, end: Option<Instant>) {
        if let Some(telemetry) = self.telemetry.take() {
            let metrics = &self.connection.shared().calls;
            match end {
                Some(end) => telemetry.finish_at(metrics, outcome, end),
                None => telemetry.finish(metrics, outcome),
            }
        }
    }

    /// Decodes the answer.
    pub(crate) fn decode<R: DeserializeOwned>(&self, reply: Reply) -> Result<R, CallError> {
        let config = self.connection.shared().config();
        let (limit, depth) = (config.max_frame_length, config.max_decode_depth);
        decode_with(reply.refs, || codec::decode(&reply.payload, limit, depth))
            .map_err(|message| CallError::Decode { message })
    }

    fn shared(&self) -> &Arc<Shared> {
        self.connection.shared()
    }

    /// Its answer, if it has come (else its caller is woken when it does).
    fn poll_answer(&self, cx: &mut Context<'_>) -> Poll<Result<Reply, CallError>> {
        let (polled, replaced) = lock(&self.shared().pending).poll_answer(self.id, cx.waker());
        // A waker is dropped outside the lock: it may be an executor's, running its code.
        drop(replaced);
        polled
    }

    /// Polls the call: sends it at the first poll, failing with a `Call` timeout `timeout`
    /// later unless answered (read only then: the connection's timer sees to it, see
    /// `deadlines`); then its answer, once it has come.
    pub(crate) fn poll_call(
        &mut self,
        cx: &mut Context<'_>,
        timeout: Option<Duration>,
    ) -> Poll<Result<Reply, CallError>> {
        let first_poll = !self.polled;
        if first_poll {
            self.polled = true;
            // The clock is read for a timed call, or for a deadline, once; but not for the
            // deadline of a call made while others wait (see `deadlines`).
            let mut now = None;
            self.start_telemetry(&mut now);
            let shared = self.connection.shared();
            let (registered, others_in_flight, others_unpolled) = {
                let mut pending = lock(&shared.pending);
                let others_in_flight = pending.waiting() > 0;
                let deadline = match (timeout, now) {
                    (None, _) => Deadline::None,
                    (Some(timeout), None) if others_in_flight => Deadline::After(timeout),
                    (Some(timeout), now) => Deadline::at(now.unwrap_or_else(Instant::now), timeout),
                };
                let registered = pending.register(self.id, cx.waker().clone(), deadline);
                // Counted from the ids given out: no count kept per call made.
                let unpolled = pending.unpolled(shared.request_ids_given());
                (registered, others_in_flight, unpolled > 0)
            };
            self.others_in_flight = others_in_flight;
            self.others_unpolled = others_unpolled;
            match registered {
                Ok(true) => self.shared().deadline_moved.notify_one(),
                Ok(false) => {}
                Err(reason) => {
                    self.done = true;
                    self.frame = None;
                    return Poll::Ready(Err(CallError::disconnected(reason)));
                }
            }
            self.registered = true;
        }
        if let Some(mut frame) = self.frame.take() {
            loop {
                if let Some(room) = self.room.as_mut() {
                    if room.as_mut().poll(cx).is_pending() {
                        // Waiting for room: the deadline (or the connection's end) may come
                        // first, so the answer's channel is watched too.
                        if let Poll::Ready(result) = self.poll_answer(cx) {
                            self.done = true;
                            // Never queued, never sent: its exports roll back, and the callee
                            // has nothing to cancel.
                            drop(frame);
                            return Poll::Ready(result);
                        }
                        self.frame = Some(frame);
                        return Poll::Pending;
                    }
                    self.room = None;
                }
                match frame.try_queue(self.shared(), || {}) {
                    Ok(()) => break,
                    Err(unqueued) => {
                        frame = unqueued;
                        // What is queued must go out for room to come.
                        self.shared().flush();
                        let shared = Arc::clone(self.shared());
                        self.room = Some(Box::pin(async move { shared.outbox.room().await }));
                    }
                }
            }
            if self.others_in_flight && !self.flushed {
                // Other calls are waiting for answers: this one was most likely started as
                // one of theirs arrived (a pipeline, tasks calling in a loop). The writer task
                // writes it after the current burst, with the others started meanwhile.
                self.flushed = true;
                self.shared().outbox.flush_after_burst();
            } else if self.others_unpolled {
                // Others were made with it: come back at once to write, so that the calls
                // polled in this round share the write. Should this future not be polled again
                // soon (a `select!` busy elsewhere), the writer task writes it anyway.
                self.shared().outbox.flush_soon();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if !self.flushed {
            self.flushed = true;
            self.shared().flush();
        }
        if first_poll {
            // Registered with this poll's waker just now: the answer wakes it.
            return Poll::Pending;
        }
        let Poll::Ready(result) = self.poll_answer(cx) else {
            return Poll::Pending;
        };
        self.done = true;
        if let Err(e) = &result
            && e.timeout_kind() == Some(TimeoutKind::Call)
        {
            // The connection's timer failed it (see `deadlines`): tell the callee to stop,
            // with the cancels of the other calls that timed out with it, in one write.
            let shared = self.shared();
            shared.send_control(&Message::Cancel { id: self.id }, false);
            shared.outbox.flush_after_burst();
        }
        Poll::Ready(result)
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        // Dropped before its end: to its caller, the call was cancelled.
        self.finish_telemetry(Outcome::Cancelled, None);
        if !self.polled {
            // Never polled: nothing was sent (the frame's exports roll back), and its id will
            // never be registered.
            lock(&self.shared().pending).settle_unregistered();
            return;
        }
        if self.done || !self.registered {
            return;
        }
        let shared = Arc::clone(self.shared());
        let removed = lock(&shared.pending).remove(self.id);
        // What it left is dropped outside the lock: an answer that came meanwhile may hold
        // references, and a waker may run its executor's code.
        let was_pending = matches!(removed, Removed::Waiting { .. });
        drop(removed);
        if was_pending && self.frame.is_none() {
            // With the cancels of other calls dropped with it (a `join_all` dropped), in one
            // write after the burst.
            shared.send_control(&Message::Cancel { id: self.id }, false);
            shared.outbox.flush_after_burst();
        }
    }
}
