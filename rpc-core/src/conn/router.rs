//! The frame router: what the reader does with each frame that arrives, in order.
//!
//! A frame's header is decoded (`codec::decode_header`, bounded by the frame's bytes) and its
//! reference table resolved before the next frame is looked at, so a reference can never be
//! released by a later decref while it is on its way to the code that will decode it. Answers
//! complete the call they belong to; calls go to `incoming` (and their handlers, to
//! `handlers`); cancels free the call's slot and stop its handler; decrefs release exports;
//! pings are answered. A frame that does not decode is a broken peer: the connection closes.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Buf, Bytes};

use super::incoming::{BurstClock, Permanent, Started, incoming_call, refuse};
use super::lifecycle::{Closed, lock};
use super::outgoing::Completed;
use super::refctx::resolve;
use super::shared::{Reply, Shared};
use super::slot::{SlotReturns, free_slot};
use crate::codec;
use crate::error::{CallError, RemoteErrorKind};
use crate::protocol::Message;

/// Routes one frame of the burst of `clock` (`permanent`: the reader's handles on the permanent
/// objects; `returns`: what the calls that ended in it gave back); returns the admitted call whose
/// handler is to run, if it was one. An error closes the connection. `known` is the method name
/// of the last call admitted, as its object declares it: a call of the same method (the usual
/// case) takes it instead of checking the UTF-8 of the name it brings, and a call admitted
/// here leaves its own.
pub(crate) fn route_frame(
    shared: &Arc<Shared>,
    (clock, returns): (&mut BurstClock, &mut SlotReturns),
    permanent: &Permanent,
    known: &mut Option<&'static str>,
    frame: Bytes,
) -> Result<Option<Started>, Closed> {
    // Borrowing from the frame: a call's method name is not copied.
    let (message, used) = codec::decode_header(&frame, *known)
        .map_err(|e| Closed::Protocol(format!("undecodable message: {e}")))?;
    match message {
        Message::Call {
            id,
            object,
            method,
            deadline_ms,
            refs,
        } => match resolve(shared, refs) {
            Ok(refs) => {
                let call = (id, object, &*method);
                let args = &frame[used..];
                let burst = (clock, returns);
                let started =
                    incoming_call(shared, burst, permanent, call, deadline_ms, args, refs);
                if let Ok(Some(Started {
                    method: Cow::Borrowed(name),
                    ..
                })) = &started
                {
                    *known = Some(name);
                }
                return started;
            }
            Err(message) => {
                let call = (id, object, &*method);
                refuse(shared, call, None, RemoteErrorKind::BadArguments, message);
            }
        },
        Message::Answer { id, refs } => {
            // Resolved even when nobody waits for the answer any more, so that the
            // references in it are counted, and released again.
            // The frame itself, advanced past the header (no count taken on its buffer).
            let mut payload = frame;
            payload.advance(used);
            let reply = resolve(shared, refs)
                .map(|refs| Reply {
                    payload,
                    refs,
                    arrived: clock.now(),
                })
                .map_err(|message| CallError::Decode { message });
            complete(shared, id, reply, clock.serial());
        }
        Message::Error { id, error } => complete(shared, id, Err(error.into()), clock.serial()),
        Message::Cancel { id } => {
            // Frees the slot now; dropping the cancel handle stops the handler.
            free_slot(shared, |admission| admission.cancel(id));
        }
        Message::Decref { object, count } => shared.release_sent(object, u64::from(count)),
        Message::Ping { nonce } => shared.send_control(&Message::Pong { nonce }, false),
        Message::Pong { .. } => {}
    }
    Ok(None)
}

fn complete(shared: &Shared, id: u64, result: Result<Reply, CallError>, burst: u64) {
    let completed = lock(&shared.pending).complete(id, result, burst);
    match completed {
        Completed::Wake(waker) => waker.wake(),
        // The caller gave up on the call (cancelled it): the answer is dropped here, outside
        // the lock (releasing the references in it takes other locks).
        Completed::Unwanted(answer) => drop(answer),
    }
}
