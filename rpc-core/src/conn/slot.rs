//! An admitted call's [`Slot`], and what the calls that end in the reader give back to it
//! ([`SlotReturns`]).
//!
//! A call holds its slot in the connection's admission table (`admission`) from its admission
//! until its answer is queued, or it is cancelled (a call answered in the reader's first poll:
//! a little longer, see [`SlotReturns`]): that is what `max_in_flight_calls` counts, and what a
//! graceful shutdown waits for. The slot also holds a handle on the connection, to
//! free itself with when dropped (a task aborted, a panic), and the call's span and clock.

use std::sync::Arc;

use tokio::time::Instant;

use super::admission::{Admission, Ticket};
use super::caller::as_caller;
use super::lifecycle::lock;
use super::shared::Shared;
use crate::lock::SpinGuard;
use crate::telemetry::{CallTelemetry, Outcome};

/// An admitted call's slot, freed when its answer is queued ([`Slot::free`]), or given back to
/// the reader that ran it ([`SlotReturns::put_back`]), or when dropped
/// (also if its task panics or is aborted); and the call's span and clock, counted in the
/// connection's metrics when the call ends ([`Slot::finish_at`]), or as `cancelled` if the
/// slot is dropped before (the call holds no metric handles of its own: see `telemetry`).
pub(crate) struct Slot {
    /// Its connection: always there, but while [`Slot::first_poll`] lends it out, and once
    /// [`SlotReturns::put_back`] took it back.
    shared: Option<Arc<Shared>>,
    pub(crate) ticket: Ticket,
    freed: bool,
    telemetry: Option<CallTelemetry>,
}

impl Slot {
    /// The slot of the call of `ticket`, holding `shared`.
    pub(crate) fn new(shared: Arc<Shared>, ticket: Ticket) -> Slot {
        Slot {
            shared: Some(shared),
            ticket,
            freed: false,
            telemetry: None,
        }
    }

    /// The call's span and clock, from now on (`None`: the call is not timed).
    pub(crate) fn start_telemetry(&mut self, telemetry: Option<CallTelemetry>) {
        self.telemetry = telemetry;
    }

    /// Frees the slot (once): another call may take it.
    pub(crate) fn free(&mut self) {
        if let Some(shared) = &self.shared
            && !std::mem::replace(&mut self.freed, true)
        {
            free_slot(shared, |admission| admission.finish(self.ticket));
        }
    }

    /// The call's span, to run its handler in (`None`: no subscriber wants it).
    pub(crate) fn span(&self) -> Option<&tracing::Span> {
        self.telemetry.as_ref().and_then(CallTelemetry::span)
    }

    /// The call ended with `outcome`, at `end`: counted (once).
    pub(crate) fn finish_at(&mut self, outcome: Outcome, end: Instant) {
        if let (Some(shared), Some(telemetry)) = (&self.shared, self.telemetry.take()) {
            telemetry.finish_at(&shared.calls, outcome, end);
        }
    }

    /// The call ended with `outcome`, now: counted (once).
    pub(crate) fn finish(&mut self, outcome: Outcome) {
        if self.telemetry.is_some() {
            self.finish_at(outcome, Instant::now());
        }
    }

    /// Runs `poll`, the first poll of the call's handler made where the call was admitted, in
    /// the call's span, with the slot's connection as the current caller (`Peer::current`):
    /// no count of the connection is taken for it (a handler that goes on in a task of its own
    /// gets its own).
    pub(crate) fn first_poll<R>(&mut self, poll: impl FnOnce() -> R) -> R {
        let Slot {
            shared, telemetry, ..
        } = self;
        let _in_span = telemetry
            .as_ref()
            .and_then(CallTelemetry::span)
            .map(tracing::Span::enter);
        as_caller(shared, poll)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free();
        // Dropped before its end: the call was cancelled.
        self.finish(Outcome::Cancelled);
    }
}

/// Frees a call's slot with `free` (`true` if it freed one) and, when that leaves no call in
/// flight and someone waits for that, tells them (see `incoming::idle`).
pub(crate) fn free_slot(shared: &Shared, free: impl FnOnce(&mut Admission) -> bool) {
    let mut admission = lock(&shared.admission);
    let freed = free(&mut admission);
    tell_if_idle(shared, admission, freed);
}

/// When a slot was just `freed` under `admission`'s lock and that leaves no call in flight, tells
/// whoever waits for that (see `incoming::idle`), after releasing the lock.
fn tell_if_idle(shared: &Shared, admission: SpinGuard<'_, Admission>, freed: bool) {
    if freed && admission.idle_with_waiters() {
        drop(admission);
        shared.idle.notify_waiters();
    }
}

/// What the calls that end in their first poll by the reader of a `current_thread` runtime
/// (`handlers::first_poll_fresh`) give back to it:
///
/// - their handle on the connection, which the next call's slot takes instead of a new one;
/// - their slot: freed as the call's answer is gathered, it leaves the admission table under
///   the next lock the reader takes there, to admit the next call
///   ([`SlotReturns::admit_after`]), or when the burst ends ([`SlotReturns::settle`]).
///
/// So each such call takes one lock of the admission table and no count of the connection,
/// where it took two locks, a count up and a count down: six locked instructions.
///
/// Soundness of the late free: until the table is told, the call only looks in flight a
/// little longer, maybe after its answer was queued or written (see `gathered`). The next call
/// is admitted after it is freed, under the same lock; a handler (`Peer::calls_in_flight`) only
/// runs once its own call was admitted; and anything on other threads (a graceful shutdown
/// waiting for no call in flight) hears of it when the burst ends at the latest.
#[derive(Default)]
pub(crate) struct SlotReturns {
    handle: Option<Arc<Shared>>,
    /// The slot of the call that ended last, freed in all but the table.
    unsettled: Option<Ticket>,
}

impl SlotReturns {
    /// The handle the last call gave back, or a new one on `shared`.
    pub(crate) fn handle(&mut self, shared: &Arc<Shared>) -> Arc<Shared> {
        self.handle.take().unwrap_or_else(|| Arc::clone(shared))
    }

    /// Takes back what `slot` holds, its call over (answered, counted): its handle, and its
    /// slot, to free in the table with the next lock if it is not freed yet. What is left of
    /// `slot` has nothing to do when dropped.
    pub(crate) fn put_back(&mut self, slot: &mut Slot) {
        debug_assert!(slot.telemetry.is_none(), "the call was not counted");
        let Some(shared) = slot.shared.take() else {
            return;
        };
        if !std::mem::replace(&mut slot.freed, true)
            && let Some(earlier) = self.unsettled.replace(slot.ticket)
        {
            // Not expected (each call's admission settles the slot given back before it),
            // but never left unfreed: the earlier one is freed now.
            free_slot(&shared, |admission| admission.finish(earlier));
        }
        self.handle = Some(shared);
    }

    /// Admits a call with `admit`, under the same lock as it frees the slot given back last.
    pub(crate) fn admit_after<R>(
        &mut self,
        shared: &Shared,
        admit: impl FnOnce(&mut Admission) -> R,
    ) -> R {
        let mut admission = lock(&shared.admission);
        let freed = self.settle_in(&mut admission);
        let admitted = admit(&mut admission);
        // Idle only if the call was refused, and no other is in flight.
        tell_if_idle(shared, admission, freed);
        admitted
    }

    /// Frees the slot given back last, if it is not yet (the burst ended).
    pub(crate) fn settle(&mut self, shared: &Shared) {
        if self.unsettled.is_some() {
            free_slot(shared, |admission| self.settle_in(admission));
        }
    }

    fn settle_in(&mut self, admission: &mut Admission) -> bool {
        self.unsettled
            .take()
            .is_some_and(|ticket| admission.finish(ticket))
    }
}
