//! [`Admission`]: which incoming calls may run on a connection.
//!
//! A call is refused while the connection drains (`ShuttingDown`) or when
//! `max_in_flight_calls` are already running (`Overloaded`); a request id already running is a
//! broken peer. Each admitted call holds a slot until it finishes or is cancelled: a cancel
//! frees the slot at once, not when the handler's task next runs. A handler that has to wait
//! for something asks for a cancel handle ([`Admission::watch`]), which fires when its call is
//! cancelled; one that finishes at once needs none (its runner checks
//! [`Admission::is_running`] first). Tickets tell a finished call from a newer call that
//! reused its id.

use tokio::sync::oneshot;

use crate::id_map::IdMap;

/// Why a call was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The connection is draining.
    ShuttingDown,
    /// `max` calls are running.
    Full { max: usize },
    /// A call with this id is still running: the peer breaks the protocol.
    DuplicateId,
}

/// An admitted call's claim on its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    id: u64,
    serial: u64,
}

struct Running {
    serial: u64,
    /// Dropping it tells a waiting handler that its call was cancelled.
    cancel: Option<oneshot::Sender<()>>,
}

/// The incoming calls in flight on one connection.
pub(crate) struct Admission {
    max: usize,
    draining: bool,
    running: IdMap<Running>,
    next_serial: u64,
    /// Tasks waiting for no call to be in flight (see [`Admission::wait_for_idle`]).
    idle_waiters: usize,
}

impl Admission {
    pub(crate) fn new(max: usize) -> Self {
        Admission {
            max,
            draining: false,
            running: IdMap::default(),
            next_serial: 0,
            idle_waiters: 0,
        }
    }

    /// Admits call `id`: its ticket.
    pub(crate) fn admit(&mut self, id: u64) -> Result<Ticket, Refusal> {
        if self.draining {
            return Err(Refusal::ShuttingDown);
        }
        if self.running.get(id).is_some() {
            return Err(Refusal::DuplicateId);
        }
        if self.running.len() >= self.max {
            return Err(Refusal::Full { max: self.max });
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let running = Running {
            serial,
            cancel: None,
        };
        self.running.insert(id, running);
        Ok(Ticket { id, serial })
    }

    /// `true` while the call of `ticket` holds its slot (not cancelled, not finished).
    pub(crate) fn is_running(&self, ticket: Ticket) -> bool {
        self.running
            .get(ticket.id)
            .is_some_and(|r| r.serial == ticket.serial)
    }

    /// A receiver that fires (with an error) when the call of `ticket` is cancelled; `None` if
    /// it already was.
    pub(crate) fn watch(&mut self, ticket: Ticket) -> Option<oneshot::Receiver<()>> {
        let running = self
            .running
            .get_mut(ticket.id)
            .filter(|r| r.serial == ticket.serial)?;
        let (cancel, cancelled) = oneshot::channel();
        running.cancel = Some(cancel);
        Some(cancelled)
    }

    /// The call of `ticket` is over; `true` if this freed its slot (it was not cancelled).
    pub(crate) fn finish(&mut self, ticket: Ticket) -> bool {
        match self.running.get(ticket.id) {
            Some(r) if r.serial == ticket.serial => {
                self.running.remove(ticket.id);
                true
            }
            _ => false,
        }
    }

    /// The caller cancelled `id`: its slot is free now and its handler is told to stop.
    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        self.running.remove(id).is_some()
    }

    /// Cancels every call, and refuses any from now on (the connection closed).
    pub(crate) fn cancel_all(&mut self) {
        self.draining = true;
        drop(self.running.take_all());
    }

    /// Refuse new calls from now on.
    pub(crate) fn drain(&mut self) {
        self.draining = true;
    }

    /// Calls holding a slot.
    pub(crate) fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// `true` if no call is in flight; otherwise the caller is counted as waiting for that
    /// (until [`Admission::stop_waiting_for_idle`]) and must wait to be notified.
    pub(crate) fn wait_for_idle(&mut self) -> bool {
        if self.running.len() == 0 {
            return true;
        }
        self.idle_waiters += 1;
        false
    }

    /// A waiter counted by [`Admission::wait_for_idle`] waits no more.
    pub(crate) fn stop_waiting_for_idle(&mut self) {
        self.idle_waiters -= 1;
    }

    /// `true` when no call is in flight and someone waits for that: they must be notified
    /// (most calls finish with no one waiting, and a notify costs a lock of its own).
    pub(crate) fn idle_with_waiters(&self) -> bool {
        self.running.len() == 0 && self.idle_waiters > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_a_cancel_frees_its_slot_at_once() {
        let mut admission = Admission::new(2);
        let a = admission.admit(1).unwrap();
        let mut a_cancelled = admission.watch(a).unwrap();
        let _b = admission.admit(2).unwrap();
        assert_eq!(admission.admit(3).unwrap_err(), Refusal::Full { max: 2 });
        assert!(admission.is_running(a));
        assert!(admission.cancel(1));
        assert!(!admission.is_running(a));
        assert!(admission.watch(a).is_none());
        assert!(a_cancelled.try_recv().is_err(), "the handler is told");
        assert_eq!(admission.in_flight(), 1);
        // The cancelled call's task finishing later frees nothing more.
        assert!(!admission.finish(a));
        let c = admission.admit(3).unwrap();
        assert!(admission.finish(c));
        assert_eq!(admission.in_flight(), 1);
    }

    #[test]
    fn a_reused_id_is_refused_while_running_and_tickets_are_not_confused() {
        let mut admission = Admission::new(10);
        let old = admission.admit(7).unwrap();
        assert_eq!(admission.admit(7).unwrap_err(), Refusal::DuplicateId);
        assert!(admission.cancel(7));
        let new = admission.admit(7).unwrap();
        assert!(
            !admission.finish(old),
            "the old call freed the new one's slot"
        );
        assert_eq!(admission.in_flight(), 1);
        assert!(admission.finish(new));
    }

    #[test]
    fn draining_refuses_and_cancel_all_empties() {
        let mut admission = Admission::new(10);
        admission.admit(1).unwrap();
        admission.drain();
        assert_eq!(admission.admit(2).unwrap_err(), Refusal::ShuttingDown);
        admission.cancel_all();
        assert_eq!(admission.in_flight(), 0);
        assert_eq!(admission.admit(3).unwrap_err(), Refusal::ShuttingDown);
    }

    #[test]
    fn idle_is_announced_only_to_waiters() {
        let mut admission = Admission::new(10);
        assert!(admission.wait_for_idle(), "nothing runs: idle at once");
        let a = admission.admit(1).unwrap();
        let b = admission.admit(2).unwrap();
        assert!(admission.finish(a));
        assert!(!admission.idle_with_waiters(), "one call still runs");
        assert!(admission.finish(b));
        assert!(!admission.idle_with_waiters(), "idle, but no one waits");
        let c = admission.admit(3).unwrap();
        assert!(
            !admission.wait_for_idle(),
            "a call runs: the waiter is counted"
        );
        assert!(admission.cancel(3));
        assert!(admission.idle_with_waiters());
        assert!(!admission.finish(c));
        admission.stop_waiting_for_idle();
        assert!(!admission.idle_with_waiters(), "the waiter left");
    }
}
