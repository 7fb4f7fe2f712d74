//! Incoming calls: admission, and the handler each admitted call gets.
//!
//! A call the reader routes here is refused at once (an error answer) when the connection drains,
//! the object is unknown, more than a third of the output budget is queued, or
//! `max_in_flight_calls` are running. Otherwise it takes a slot (see `slot`: freed when its answer
//! is queued or gathered, or at once when it is cancelled), its arguments are decoded with the
//! frame's references, and its handler is made, not yet polled: [`Started`], which `handlers` runs
//! (off the reader on a multi-threaded runtime; see there).

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::CatchUnwind;
use tokio::time::Instant;

use super::admission::Refusal;
use super::lifecycle::{Closed, lock};
use super::refctx::decode_with;
use super::shared::{Reference, Shared};
use super::slot::{Slot, SlotReturns};
use crate::dispatch::{Args, Dispatch, HandlerFuture, run_dispatch};
use crate::error::{RemoteError, RemoteErrorKind};
use crate::protocol::Message;
use crate::telemetry::{CallSite, CallTelemetry, Direction, Outcome};

/// Resolves once no incoming call is in flight (or the connection closed).
pub(crate) async fn idle(shared: &Shared) {
    /// Counted as waiting (under the admission lock, where the last call's end is seen) from
    /// its notification's registration until it is dropped.
    struct Waiter<'a>(&'a Shared);
    impl Drop for Waiter<'_> {
        fn drop(&mut self) {
            lock(&self.0.admission).stop_waiting_for_idle();
        }
    }
    loop {
        let notified = shared.idle.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if shared.is_closed() || lock(&shared.admission).wait_for_idle() {
            return;
        }
        let _waiter = Waiter(shared);
        notified.await;
    }
}

/// Answers call `id` of `object`'s `method` with an error at once (a frame that cannot wait),
/// and counts it (under the method's declared name `label`, if it has one).
pub(crate) fn refuse(
    shared: &Shared,
    (id, object, method): (u64, u64, &str),
    label: Option<&'static str>,
    kind: RemoteErrorKind,
    message: String,
) {
    let site = CallSite {
        direction: Direction::Incoming,
        method,
        interface: None,
        object,
        peer: shared.peer(),
        id,
    };
    // Refused at once: it starts and ends at the same instant (one clock read).
    let now = Instant::now();
    let metrics = &shared.calls;
    if let Some(telemetry) = CallTelemetry::start(site, label.map(Cow::Borrowed), now, metrics) {
        telemetry.finish_at(metrics, Outcome::of_remote(kind), now);
    }
    let error = RemoteError::new(kind, message);
    shared.send_control(&Message::Error { id, error }, false);
}

/// A handler; a panic in it is caught. It is polled with its caller as `Peer::current`: by
/// [`Slot::first_poll`], or in a `WithCaller`.
pub(crate) type Handler = CatchUnwind<AssertUnwindSafe<HandlerFuture>>;

/// An admitted call whose handler is made and not yet polled (see `handlers`).
pub(crate) struct Started {
    pub(crate) id: u64,
    pub(crate) handler: Handler,
    /// The caller's deadline: when it passes (counted from when the call arrived), and how
    /// long it was.
    pub(crate) deadline: Option<(Instant, Duration)>,
    /// Its slot, with its span and clock.
    pub(crate) slot: Slot,
    pub(crate) interface: &'static str,
    pub(crate) method: Cow<'static, str>,
}

/// The time a burst of frames began to be read, read once, when its first call or answer
/// needs it: the start of the deadline and of the duration of every call of the burst, and
/// the end of every call the burst answers. And the burst's number (the reader's bursts count
/// up from 0), which the answers it brings are marked with.
#[derive(Default)]
pub(crate) struct BurstClock {
    began: Option<Instant>,
    serial: u64,
}

impl BurstClock {
    /// When the burst began (read now if this is its first call).
    pub(crate) fn now(&mut self) -> Instant {
        *self.began.get_or_insert_with(Instant::now)
    }

    /// The burst's number.
    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    /// The burst is over: the next one reads the clock again, and has the next number.
    /// Returns when it began, if the clock was read.
    pub(crate) fn reset(&mut self) -> Option<Instant> {
        self.serial += 1;
        self.began.take()
    }
}

/// The reader's own handles on the connection's permanent objects (see `exports`), so that a
/// call of one (of the root, most calls) finds it without locking the export table and
/// without counting a reference to it. They are the table's from the start to the close (never
/// released before), and the reader, which routes calls only while the connection is open,
/// drops them when it ends.
pub(crate) struct Permanent(Vec<(u64, Arc<dyn Dispatch>)>);

impl Permanent {
    pub(crate) fn new(objects: &[(u64, Arc<dyn Dispatch>)]) -> Self {
        Permanent(objects.to_vec())
    }

    fn get(&self, id: u64) -> Option<&Arc<dyn Dispatch>> {
        self.0
            .iter()
            .find(|(at, _)| *at == id)
            .map(|(_, object)| object)
    }
}

/// A call arrived (in the burst of `clock`): refuse it (`None`), or admit it and make its handler,
/// with what the calls before it gave back (`returns`). An error means the peer broke the protocol
/// (a request id already running).
pub(crate) fn incoming_call(
    shared: &Arc<Shared>,
    (clock, returns): (&mut BurstClock, &mut SlotReturns),
    permanent: &Permanent,
    (id, object, method): (u64, u64, &str),
    deadline_ms: Option<u64>,
    args: &[u8],
    refs: Vec<Reference>,
) -> Result<Option<Started>, Closed> {
    let call = (id, object, method);
    // A permanent object (the root, most calls) is the reader's own: no lock, no count taken.
    let exported;
    let target = match permanent.get(object) {
        Some(target) => target,
        None => {
            exported = shared.exported(object);
            match &exported {
                Some(target) => target,
                None => {
                    let message = format!(
                        "no object {object} is exported on this connection (it was never handed \
                         out here, or it has been released)"
                    );
                    refuse(shared, call, None, RemoteErrorKind::NoSuchObject, message);
                    return Ok(None);
                }
            }
        }
    };
    // The method's name as the object declares it (`None`: it has no such method).
    let label = target.method_name(method);
    if shared.outbox.is_busy() {
        // Backpressure without ever stopping to read (two peers that both stopped reading
        // while their outboxes were full would wait for each other for ever).
        let message = format!(
            "{} bytes are waiting to be sent on this connection; read the answers of earlier \
             calls before sending more",
            shared.outbox.backlog()
        );
        refuse(shared, call, label, RemoteErrorKind::Overloaded, message);
        return Ok(None);
    }
    let admitted = returns.admit_after(shared, |admission| admission.admit(id));
    let ticket = match admitted {
        Ok(admitted) => admitted,
        Err(Refusal::ShuttingDown) => {
            let message = "the server is shutting down and takes no new calls; retry on \
                           another server";
            refuse(
                shared,
                call,
                label,
                RemoteErrorKind::ShuttingDown,
                message.into(),
            );
            return Ok(None);
        }
        Err(Refusal::Full { max }) => {
            let message = format!(
                "{max} calls are already running on this connection (the server's limit); wait \
                 for answers before sending more"
            );
            refuse(shared, call, label, RemoteErrorKind::Overloaded, message);
            return Ok(None);
        }
        Err(Refusal::DuplicateId) => {
            return Err(Closed::Protocol(format!(
                "the peer sent call {id} while its call {id} was still running"
            )));
        }
    };
    let mut slot = Slot::new(returns.handle(shared), ticket);
    let config = shared.config();
    let decoded = decode_with(refs, || {
        run_dispatch(
            target.as_ref(),
            method,
            Args::new(args, config.max_frame_length, config.max_decode_depth),
        )
    });
    let handler = match decoded {
        Ok(handler) => handler,
        Err(error) => {
            drop(slot);
            refuse(shared, call, label, error.kind, error.message);
            return Ok(None);
        }
    };
    let interface = target.interface();
    // One clock read per burst, for the deadlines and the durations of its calls.
    let now = clock.now();
    let site = CallSite {
        direction: Direction::Incoming,
        method,
        interface: Some(interface),
        object,
        peer: shared.peer(),
        id,
    };
    let telemetry = CallTelemetry::start(site, label.map(Cow::Borrowed), now, &shared.calls);
    slot.start_telemetry(telemetry);
    let method = label.map_or_else(|| Cow::Owned(method.to_owned()), Cow::Borrowed);
    let handler = AssertUnwindSafe(handler).catch_unwind();
    // A deadline too far away to be an `Instant` (`with_timeout(Duration::MAX)`) is none.
    let deadline = deadline_ms.and_then(|ms| {
        let after = Duration::from_millis(ms);
        Some((now.checked_add(after)?, after))
    });
    Ok(Some(Started {
        id,
        handler,
        deadline,
        slot,
        interface,
        method,
    }))
}
