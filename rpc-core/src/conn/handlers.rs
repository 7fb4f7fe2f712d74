//! Running the handlers of admitted calls, and answering them.
//!
//! On a multi-threaded runtime the reader never runs a handler. At the end of each burst of
//! frames it hands the burst's [`Started`] calls to one new task, which polls each handler
//! once: most finish at once, and their answers go out together in one write when the task is
//! done. A handler that does not finish at once continues as a task of its own. A handler that
//! computes for a long time without awaiting thus holds up neither the reader (later calls,
//! cancels, decrefs, pings) nor the calls of later bursts. Nor the rest of its own burst: while
//! bursts of several calls are under way, the connection's [`Watchdog`] checks every 2 ms, and
//! once one first poll has run across two checks it writes the answers already queued and
//! polls the rest of that burst in another task (the watchdog sleeps while no such burst is
//! under way, so it costs nothing then). One case is tokio's, not ours: if the busy handler
//! runs on the worker that was driving I/O while every other worker sleeps, no socket is read
//! until it yields (tokio hands the I/O driver over only when a worker parks). CPU-bound work
//! belongs on `tokio::task::spawn_blocking` (PB's `deferToThread`).
//!
//! On a `current_thread` runtime that task would run on the reader's own thread, once the
//! reader yields, and nothing else could run while a handler computes: there the reader
//! first-polls each handler itself ([`first_poll`]), as soon as its call is routed, and writes
//! the answers with what else the burst queued when the burst ends (no task made and scheduled
//! per burst: 6 to 7 % more calls per second in `rpc-bench`, sequential and 64 in flight). A
//! handler that finishes at once is thus made, run and freed before the next call of the burst
//! is read: its slot is free again for that call (it leaves the admission table as that call
//! is admitted: `slot::SlotReturns`), and its memory is used again for it. A cancel of a call
//! that comes later in the same burst finds it answered already (it only takes it out of the
//! admission table, if the next call did not), as it would a call answered in an earlier
//! burst. A handler computing without awaiting holds up its
//! connection there, as it holds up every other task of the thread.
//!
//! An answer is encoded where its handler finished. A panic there, in the handler or in the
//! encoding of its value, becomes a `Panicked` error answer, and the exports made for that
//! answer are rolled back. An answer that finds the outbox full waits for room, holding its
//! call's slot; the slot is freed under the outbox's lock as the answer goes in.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{Instrument, Span};

use super::caller::WithCaller;
use super::gathered::{self, Added};
use super::incoming::{BurstClock, Started};
use super::lifecycle::lock;
use super::refctx::{EncodedFrame, FrameError, encode_frame};
use super::shared::Shared;
use super::slot::{Slot, SlotReturns};
use crate::dispatch::{Answer, panicked, settle};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::protocol::Message;
use crate::telemetry::Outcome;

/// The watchdog's tick: a first poll seen running at two ticks in a row (so for 2 to 4 ms)
/// has the rest of its burst polled elsewhere.
const TAKE_OVER_AFTER: Duration = Duration::from_millis(2);

/// The calls of one burst not yet first-polled, shared by the task polling them and the
/// watchdog that hands the rest to another task when a poll runs long.
struct Burst {
    calls: Mutex<BurstCalls>,
    /// `polls` as the watchdog saw it at its last tick: the same odd value a tick later means
    /// one poll has run for a whole tick.
    seen: AtomicU64,
}

/// A burst's calls not yet taken, and its first polls, counted under the same lock (taken once
/// per call: no clock is read, no atomic counted).
struct BurstCalls {
    queue: VecDeque<Started>,
    /// Counts first polls begun and ended (odd while one runs).
    polls: u64,
}

impl BurstCalls {
    /// A first poll runs, or calls are left to take.
    fn under_way(&self) -> bool {
        self.polls % 2 == 1 || !self.queue.is_empty()
    }
}

/// Watches the bursts of one connection whose first polls are under way (see the module
/// docs). Its task starts with the first burst of several calls, ticks while any is under way,
/// and sleeps otherwise.
#[derive(Default)]
pub(crate) struct Watchdog {
    /// Bursts of several calls not yet known to be all polled.
    active: Mutex<Vec<Arc<Burst>>>,
    /// The task is ticking (it is asleep, or not started, otherwise).
    running: AtomicBool,
    started: AtomicBool,
    wake: Notify,
}

/// Runs the handlers of one burst on a multi-threaded runtime (see the module docs): in a task
/// for one call, or in a task watched by `watchdog` for several; nothing to do for none.
pub(crate) fn run_burst(shared: &Arc<Shared>, watchdog: &Arc<Watchdog>, calls: Vec<Started>) {
    let shared = Arc::clone(shared);
    match calls.len() {
        0 => {}
        1 => {
            tokio::spawn(async move {
                let mut clock = BurstClock::default();
                for call in calls {
                    first_poll(&shared, &mut clock, call);
                }
                shared.flush();
            });
        }
        _ => {
            let burst = Arc::new(Burst {
                calls: Mutex::new(BurstCalls {
                    queue: calls.into(),
                    polls: 0,
                }),
                seen: AtomicU64::new(0),
            });
            let wake = {
                let mut active = lock(&watchdog.active);
                active.push(Arc::clone(&burst));
                !watchdog.running.swap(true, Ordering::SeqCst)
            };
            if wake {
                if watchdog.started.swap(true, Ordering::SeqCst) {
                    watchdog.wake.notify_one();
                } else {
                    tokio::spawn(watch(Arc::clone(&shared), Arc::clone(watchdog)));
                }
            }
            poll_elsewhere(shared, burst);
        }
    }
}

/// Starts a task that first-polls the calls left in `burst`.
fn poll_elsewhere(shared: Arc<Shared>, burst: Arc<Burst>) {
    tokio::spawn(async move {
        let mut clock = BurstClock::default();
        let mut polled = false;
        loop {
            let call = {
                let mut calls = lock(&burst.calls);
                // The end of the last poll and the start of the next, in one lock.
                calls.polls += u64::from(polled);
                let call = calls.queue.pop_front();
                calls.polls += u64::from(call.is_some());
                call
            };
            let Some(call) = call else {
                break;
            };
            first_poll(&shared, &mut clock, call);
            polled = true;
        }
        // The answers of the burst, in one write.
        shared.flush();
    });
}

/// The watchdog's task: every `TAKE_OVER_AFTER` while bursts are under way, hands the rest of
/// any burst whose current first poll has run across two ticks (a handler computing without
/// awaiting) to another task, after writing the answers already queued.
async fn watch(shared: Arc<Shared>, watchdog: Arc<Watchdog>) {
    loop {
        tokio::select! {
            _ = shared.closed() => return,
            _ = tokio::time::sleep(TAKE_OVER_AFTER) => {}
        }
        let stuck: Vec<Arc<Burst>> = {
            let mut active = lock(&watchdog.active);
            // A burst is done once every call was taken and no first poll runs (one that
            // runs may hold up the answers of the calls before it).
            active.retain(|burst| lock(&burst.calls).under_way());
            if active.is_empty() {
                // Asleep until the next burst of several calls (told under the same lock).
                watchdog.running.store(false, Ordering::SeqCst);
            }
            active
                .iter()
                .filter(|burst| {
                    let polls = lock(&burst.calls).polls;
                    let seen = burst.seen.swap(polls, Ordering::SeqCst);
                    polls % 2 == 1 && polls == seen
                })
                .cloned()
                .collect()
        };
        for burst in stuck {
            // Write the answers already queued; poll whatever calls are left elsewhere.
            shared.flush();
            if !lock(&burst.calls).queue.is_empty() {
                poll_elsewhere(Arc::clone(&shared), burst);
            }
        }
        if !watchdog.running.load(Ordering::SeqCst) {
            tokio::select! {
                _ = shared.closed() => return,
                _ = watchdog.wake.notified() => {}
            }
        }
    }
}

/// Polls a handler once; answers it if it finished, or gives it a task of its own. The calls
/// a task (or a burst of the reader's) answers this way end when the first of them does
/// (`clock`: one clock read for them all).
fn first_poll(shared: &Arc<Shared>, clock: &mut BurstClock, call: Started) {
    let running = lock(&shared.admission).is_running(call.slot.ticket);
    poll_if_running(shared, (clock, None), call, running);
}

/// [`first_poll`] for a call its router admitted just now, on this thread (the reader of a
/// `current_thread` runtime, one call after another): no cancel frame can have come since, and
/// the connection closing is seen without taking the admission lock. Its answer is gathered
/// with the burst's if it can be (see `gathered`), and if it ends there, the reader takes back
/// what its slot holds (into `returns`).
pub(crate) fn first_poll_fresh(
    shared: &Arc<Shared>,
    (clock, returns): (&mut BurstClock, &mut SlotReturns),
    call: Started,
) {
    poll_if_running(shared, (clock, Some(returns)), call, !shared.is_closed());
}

/// [`first_poll`], told whether the call still holds its slot, and whether it is fresh (the
/// reader's `returns`: see [`first_poll_fresh`]).
fn poll_if_running(
    shared: &Arc<Shared>,
    (clock, returns): (&mut BurstClock, Option<&mut SlotReturns>),
    mut call: Started,
    running: bool,
) {
    if !running {
        // Cancelled (by its caller, or by the connection closing) before it ran.
        let (interface, method) = (call.interface, call.method.clone());
        drop_caught(call, interface, &method);
        return;
    }
    // Polled with a waker that does nothing: a handler that is not done is polled again at
    // once by its own task, which registers the real one.
    let mut cx = Context::from_waker(Waker::noop());
    let polled = {
        let Started { handler, slot, .. } = &mut call;
        slot.first_poll(|| Pin::new(handler).poll(&mut cx))
    };
    let Poll::Ready(result) = polled else {
        // From now on a cancel (or the connection closing) must reach it.
        let Some(cancelled) = lock(&shared.admission).watch(call.slot.ticket) else {
            return;
        };
        let shared = Arc::clone(shared);
        let span = call.slot.span().cloned().unwrap_or_else(Span::none);
        let task = async move {
            let Started {
                id,
                handler,
                deadline,
                slot,
                interface,
                method,
            } = call;
            let handler = WithCaller::new(Some(Arc::clone(&shared)), handler);
            let finished = async {
                let Some((at, after)) = deadline else {
                    return handler.await;
                };
                tokio::time::timeout_at(at, handler)
                    .await
                    .unwrap_or_else(|_| {
                        Ok(Err(RemoteError::new(
                            RemoteErrorKind::DeadlineExceeded,
                            format!("the caller's deadline of {after:?} passed"),
                        )))
                    })
            };
            let result = tokio::select! {
                biased;
                _ = cancelled => return,
                result = finished => settle(result, interface, &method),
            };
            let answered = (id, interface, &*method);
            queue_answer(&shared, answered, result, slot).await;
        };
        tokio::spawn(task.instrument(span));
        return;
    };
    let Started {
        id,
        interface,
        method,
        mut slot,
        ..
    } = call;
    let mut result = settle(result, interface, &method);
    let mut answered = None;
    if let (true, Ok(answer)) = (returns.is_some(), &result) {
        match gathered::add(shared, id, answer) {
            // Its slot is freed as the reader takes it back, below.
            Added::Yes => answered = Some(Outcome::Ok),
            Added::No => {}
            Added::Panicked => {
                tracing::warn!(interface, %method, "encoding a handler's answer panicked");
                let failed = Err(panicked(interface, &method));
                drop_caught(std::mem::replace(&mut result, failed), interface, &method);
            }
        }
    }
    let answered =
        answered.or_else(|| try_answer(shared, id, &result, &mut slot, interface, &method));
    if let Some(outcome) = answered {
        slot.finish_at(outcome, clock.now());
        if let Some(returns) = returns {
            returns.put_back(&mut slot);
        }
        drop(slot);
        drop_caught(result, interface, &method);
    } else {
        // No room for it now: wait in a task, holding the slot and the value.
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            queue_answer(&shared, (id, interface, &method), result, slot).await;
        });
    }
}

/// Encodes and queues the answer of call `id` if the outbox has room for it now, freeing the
/// call's slot under the queue's lock as it goes in, and says how the call ended by what was
/// sent; `None` (the slot still held, and no encoded frame kept: its exports are rolled back)
/// if there is no room.
fn try_answer(
    shared: &Arc<Shared>,
    id: u64,
    result: &Result<Answer, RemoteError>,
    slot: &mut Slot,
    interface: &'static str,
    method: &str,
) -> Option<Outcome> {
    if shared.outbox.is_full() {
        return None;
    }
    match answer_frame(shared, id, result, interface, method) {
        Some((frame, outcome)) => frame
            .try_queue(shared, || slot.free())
            .is_ok()
            .then_some(outcome),
        // Nothing could be encoded, not even an error: the call ends unanswered (logged).
        None => {
            slot.free();
            Some(Outcome::Error)
        }
    }
}

/// Encodes and queues the answer of call `id` once the outbox has room for it (holding only
/// the value meanwhile, never an encoded frame that counts nowhere), freeing the call's slot
/// under the queue's lock as it goes in, then writes it: no write can carry the answer before
/// the slot is free (a caller that sees the answer can make its next call at once), and a
/// drain that sees no call in flight finds the answer queued. `result` is dropped only once
/// the frame is queued (see `Answer`). The call is counted ended as it goes out (or cancelled,
/// should the connection close first).
async fn queue_answer(
    shared: &Arc<Shared>,
    (id, interface, method): (u64, &'static str, &str),
    result: Result<Answer, RemoteError>,
    mut slot: Slot,
) {
    let outcome = loop {
        if let Some(outcome) = try_answer(shared, id, &result, &mut slot, interface, method) {
            break outcome;
        }
        // Let whatever is queued go out while this answer waits for room.
        shared.flush();
        tokio::select! {
            _ = shared.lifecycle.token().cancelled() => return,
            _ = shared.outbox.room() => {}
        }
    };
    slot.finish(outcome);
    drop(slot);
    drop_caught(result, interface, method);
    shared.flush();
}

/// Drops what a call left (its handler's value once answered, or a handler cancelled before
/// it ran), catching a panic in a `Drop` of the application's: logged, it stops neither the
/// reader, nor the other calls of the burst, nor the write of their answers.
fn drop_caught<T>(value: T, interface: &str, method: &str) {
    if std::panic::catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::error!(
            interface,
            method,
            "dropping what a call left (its value, or its handler) panicked"
        );
    }
}

/// The answer frame of call `id`: its value, or the error it failed with, or the error its
/// encoding failed with; and how the call ended, by what the frame says.
fn answer_frame(
    shared: &Arc<Shared>,
    id: u64,
    result: &Result<Answer, RemoteError>,
    interface: &'static str,
    method: &str,
) -> Option<(EncodedFrame, Outcome)> {
    let frame = match result {
        Ok(answer) => {
            encode_answer(shared, id, answer, interface, method).map(|frame| (frame, Outcome::Ok))
        }
        Err(error) => encode_error(shared, id, error.clone())
            .map(|frame| (frame, Outcome::of_remote(error.kind))),
    };
    let frame = frame.or_else(|error| {
        let outcome = Outcome::of_remote(error.kind);
        encode_error(shared, id, error).map(|frame| (frame, outcome))
    });
    match frame {
        Ok(sent) => Some(sent),
        Err(e) => {
            let why = e.message;
            tracing::error!(peer = %shared.peer(), "could not encode an error answer: {why}");
            None
        }
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
            format!("the error answer could not be encoded: {e}"),
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
    let encoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
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
