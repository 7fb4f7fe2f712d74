//! [`PendingTable`]: the calls this side made on a connection that await their answer, by
//! request id (generic over the answer, which the connection's state defines), with their
//! deadlines. Registering, completing, taking the answer, cancelling, expiring and failing them
//! all at once on close are plain operations on a plain struct (the future that waits is
//! `pending_call`'s, the one timer that expires them is `deadlines`').
//!
//! The answer waits in the call's entry until its caller takes it, and the entry keeps the
//! caller's waker meanwhile: no channel is allocated per call. Every operation that may drop
//! an answer (which can hold references whose release takes other locks) hands it back to be
//! dropped outside the table's lock, and every operation that must wake a caller hands back
//! the waker, to be woken outside it.

use std::task::{Poll, Waker};

use tokio::time::Instant;

use crate::error::CallError;
use crate::id_map::IdMap;

/// The calls awaiting an answer of type `T`, and whether the connection has closed.
pub(crate) struct PendingTable<T> {
    pending: IdMap<Entry<T>>,
    /// No deadline of a waiting call is earlier than this (it may be earlier than all of
    /// them: calls answered leave it where it was until the next [`expire`](Self::expire)).
    earliest: Option<Instant>,
    /// Set once, when the connection closes: nothing registers after that.
    closed: Option<String>,
    /// Entries answered (or failed) whose caller has not taken the answer yet.
    answered: usize,
    /// The read burst the latest answer came in (see [`untaken`](Self::untaken)).
    burst: u64,
    /// Entries answered in that burst whose caller has not taken the answer yet.
    untaken: usize,
    /// Request ids settled: registered here, or given up on before that (the others given
    /// out belong to calls made and not yet polled; see [`unpolled`](Self::unpolled)).
    settled_ids: u64,
}

/// One call: still waiting (with the waker of its caller), or answered.
struct Entry<T> {
    state: State<T>,
    deadline: Option<Instant>,
}

enum State<T> {
    Waiting(Waker),
    /// With the read burst it came in.
    Answered(Result<T, CallError>, u64),
}

/// What a call left in the table when it was taken out.
pub(crate) enum Removed<T> {
    /// It was waiting (the callee is to be told): its caller's waker, held only to be
    /// dropped outside the lock.
    Waiting { _waker: Waker },
    /// Its answer had come.
    Answered(Result<T, CallError>),
    /// It was not there (never registered, or taken already).
    Unknown,
}

/// What became of an answer handed to [`PendingTable::complete`].
pub(crate) enum Completed<T> {
    /// Stored for its caller, who is to be woken.
    Wake(Waker),
    /// Nobody waits for it (the caller gave up, or it was answered already): drop it, outside
    /// the lock.
    Unwanted(Result<T, CallError>),
}

impl<T> Default for PendingTable<T> {
    fn default() -> Self {
        PendingTable {
            pending: IdMap::default(),
            earliest: None,
            closed: None,
            answered: 0,
            burst: 0,
            untaken: 0,
            settled_ids: 0,
        }
    }
}

impl<T> PendingTable<T> {
    /// Registers call `id`, whose caller `waker` is woken when it ends, to fail at `deadline`
    /// if it is not answered by then; refused (with the reason) once the connection has
    /// closed. `Ok(true)`: its deadline is now the earliest, so the timer must be told.
    pub(crate) fn register(
        &mut self,
        id: u64,
        waker: Waker,
        deadline: Option<Instant>,
    ) -> Result<bool, String> {
        self.settled_ids += 1;
        if let Some(reason) = &self.closed {
            return Err(reason.clone());
        }
        let state = State::Waiting(waker);
        self.pending.insert(id, Entry { state, deadline });
        let earlier = match (deadline, self.earliest) {
            (Some(deadline), Some(earliest)) => deadline < earliest,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.earliest = deadline;
        }
        Ok(earlier)
    }

    /// A request id given out will never be registered (its call failed to encode, or was
    /// dropped before its first poll).
    pub(crate) fn settle_unregistered(&mut self) {
        self.settled_ids += 1;
    }

    /// Calls made and not yet polled, of the `ids_given` request ids given out so far (read
    /// under the table's lock: every id settled here was given out before).
    pub(crate) fn unpolled(&self, ids_given: u64) -> u64 {
        ids_given.saturating_sub(self.settled_ids)
    }

    /// The answer to `id` arrived in the reader's `burst` (or its call failed): kept for its
    /// caller, to be woken.
    pub(crate) fn complete(
        &mut self,
        id: u64,
        answer: Result<T, CallError>,
        burst: u64,
    ) -> Completed<T> {
        let Some(entry) = self.pending.get_mut(id) else {
            // Given up on.
            return Completed::Unwanted(answer);
        };
        if !matches!(entry.state, State::Waiting(_)) {
            // Answered twice (a confused peer).
            return Completed::Unwanted(answer);
        }
        if burst != self.burst {
            // Answers of earlier bursts still untaken no longer count.
            self.burst = burst;
            self.untaken = 0;
        }
        let waker = settle(&mut entry.state, || answer, burst).expect("matched as waiting");
        self.count_answered(1);
        Completed::Wake(waker)
    }

    /// The caller of `id` looks for its answer: takes it out with the entry if it is there,
    /// else keeps `waker` (if it is not the one kept already) to be woken when it comes. Also
    /// returns the waker it replaced, to be dropped outside the lock.
    pub(crate) fn poll_answer(
        &mut self,
        id: u64,
        waker: &Waker,
    ) -> (Poll<Result<T, CallError>>, Option<Waker>) {
        let Some(entry) = self.pending.get_mut(id) else {
            // Not registered, or taken already: the caller never asks then.
            let reason = self.closed.as_deref();
            let reason = reason.unwrap_or("the call is no longer known");
            return (Poll::Ready(Err(CallError::disconnected(reason))), None);
        };
        match &mut entry.state {
            State::Waiting(kept) if kept.will_wake(waker) => (Poll::Pending, None),
            State::Waiting(kept) => (Poll::Pending, Some(std::mem::replace(kept, waker.clone()))),
            State::Answered(..) => match self.remove(id) {
                Removed::Answered(answer) => (Poll::Ready(answer), None),
                _ => unreachable!("matched as answered"),
            },
        }
    }

    /// Takes `id` out of the table (its caller took the answer, or gave up on the call): what
    /// it left, to be dropped outside the lock (a waiting call's waker: tell the callee to
    /// stop; or an answer that had come).
    pub(crate) fn remove(&mut self, id: u64) -> Removed<T> {
        match self.pending.remove(id).map(|entry| entry.state) {
            Some(State::Waiting(waker)) => Removed::Waiting { _waker: waker },
            Some(State::Answered(answer, burst)) => {
                self.answered -= 1;
                if burst == self.burst {
                    self.untaken -= 1;
                }
                Removed::Answered(answer)
            }
            None => Removed::Unknown,
        }
    }

    /// When the timer should next look: no waiting call's deadline is earlier.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.earliest
    }

    /// Fails with `error()` every waiting call whose deadline is `now` or before (each caller
    /// cancels it at the callee when it sees that); returns their callers, to be woken outside
    /// the lock. The earliest deadline left is found again.
    pub(crate) fn expire(&mut self, now: Instant, error: impl Fn() -> CallError) -> Vec<Waker> {
        let mut woken = Vec::new();
        let mut earliest: Option<Instant> = None;
        for entry in self.pending.values_mut() {
            let Some(deadline) = entry.deadline else {
                continue;
            };
            if deadline <= now {
                woken.extend(settle(&mut entry.state, || Err(error()), self.burst));
            } else if matches!(entry.state, State::Waiting(_)) {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        self.earliest = earliest;
        self.count_answered(woken.len());
        woken
    }

    /// The connection closed: every waiting call fails with `error()`, and nothing registers
    /// any more; returns their callers, to be woken outside the lock.
    pub(crate) fn fail_all(&mut self, reason: &str, error: impl Fn() -> CallError) -> Vec<Waker> {
        self.closed = Some(reason.to_owned());
        self.earliest = None;
        let burst = self.burst;
        let woken: Vec<Waker> = (self.pending.values_mut())
            .filter_map(|entry| settle(&mut entry.state, || Err(error()), burst))
            .collect();
        self.count_answered(woken.len());
        woken
    }

    /// `n` calls of the latest burst were just answered (or failed).
    fn count_answered(&mut self, n: usize) {
        self.untaken += n;
        self.answered += n;
    }

    /// Answers of the latest read burst (and failures since) whose callers have been woken and
    /// not yet taken them: while there are any, the tasks that burst woke are still running,
    /// and the calls they make are best written together once they have. Answers of earlier
    /// bursts do not count: a caller that leaves its answer untaken for long (busy elsewhere,
    /// or holding a call it does not poll) holds nothing up past the next burst.
    pub(crate) fn untaken(&self) -> usize {
        self.untaken
    }

    /// Calls still waiting for their answer (not those answered and not yet taken).
    pub(crate) fn waiting(&self) -> usize {
        self.pending.len() - self.answered
    }

    /// Calls in the table: waiting, or answered and not yet taken.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

/// A waiting call's end: its `answer`, marked with the read `burst` it counts in; returns its
/// caller's waker (`None`, and `answer` not made, if the call was not waiting).
fn settle<T>(
    state: &mut State<T>,
    answer: impl FnOnce() -> Result<T, CallError>,
    burst: u64,
) -> Option<Waker> {
    if !matches!(state, State::Waiting(_)) {
        return None;
    }
    match std::mem::replace(state, State::Answered(answer(), burst)) {
        State::Waiting(waker) => Some(waker),
        State::Answered(..) => unreachable!("matched as waiting"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::task::{ArcWake, waker};

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl ArcWake for Counting {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let count = Arc::new(Counting::default());
        (Arc::clone(&count), waker(count))
    }

    fn gone() -> CallError {
        CallError::disconnected("gone")
    }

    /// Answers call `id` with `value`, which must be waiting, and wakes its caller.
    fn answer_and_wake(table: &mut PendingTable<u8>, id: u64, value: u8) {
        let Completed::Wake(wake) = table.complete(id, Ok(value), 1) else {
            panic!("call {id} waits");
        };
        wake.wake();
    }

    #[test]
    fn register_complete_take_cancel_and_close() {
        let mut table = PendingTable::<u8>::default();
        let (count1, waker1) = counting();
        for id in 1..=3 {
            table.register(id, waker1.clone(), None).unwrap();
        }
        assert!(
            table.poll_answer(1, &waker1).0.is_pending(),
            "no answer yet"
        );
        answer_and_wake(&mut table, 1, 7);
        assert_eq!(count1.0.load(Ordering::SeqCst), 1);
        assert!(
            matches!(table.complete(1, Ok(8), 1), Completed::Unwanted(Ok(8))),
            "answered twice: the second answer is not kept"
        );
        assert_eq!(table.untaken(), 1);
        assert_eq!(
            (table.len(), table.waiting()),
            (3, 2),
            "answered, not yet taken"
        );
        assert!(matches!(
            table.poll_answer(1, &waker1).0,
            Poll::Ready(Ok(7))
        ));
        assert_eq!((table.len(), table.waiting()), (2, 2));
        assert_eq!(table.untaken(), 0);
        assert!(
            matches!(table.complete(1, Ok(9), 1), Completed::Unwanted(Ok(9))),
            "answered after it was taken"
        );
        // Given up while waiting: tell the callee; an answer after that is not wanted.
        assert!(matches!(table.remove(2), Removed::Waiting { .. }));
        assert!(matches!(
            table.complete(2, Ok(1), 1),
            Completed::Unwanted(_)
        ));
        assert!(matches!(table.remove(2), Removed::Unknown));
        // Given up after the answer came: nothing to tell, the answer to drop.
        assert!(matches!(table.complete(3, Ok(3), 1), Completed::Wake(_)));
        assert_eq!(table.untaken(), 1);
        assert!(matches!(table.remove(3), Removed::Answered(Ok(3))));
        assert_eq!(
            table.untaken(),
            0,
            "a dropped answer is no longer waiting to be taken"
        );
        // Close: the waiting fail and are woken; nothing registers after.
        let (count4, waker4) = counting();
        table.register(4, waker4.clone(), None).unwrap();
        let woken = table.fail_all("gone", gone);
        assert_eq!(woken.len(), 1);
        woken.into_iter().for_each(Waker::wake);
        assert_eq!(count4.0.load(Ordering::SeqCst), 1);
        assert_eq!(table.untaken(), 1);
        assert!(matches!(
            table.poll_answer(4, &waker4).0,
            Poll::Ready(Err(_))
        ));
        assert_eq!(table.untaken(), 0);
        assert_eq!(table.register(5, waker4, None).unwrap_err(), "gone");
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn only_the_latest_bursts_untaken_answers_count() {
        let mut table = PendingTable::<u8>::default();
        for id in 1..=4 {
            table.register(id, Waker::noop().clone(), None).unwrap();
        }
        assert!(matches!(table.complete(1, Ok(1), 1), Completed::Wake(_)));
        assert!(matches!(table.complete(2, Ok(2), 1), Completed::Wake(_)));
        assert_eq!(table.untaken(), 2);
        // Call 1's caller never comes for it; a new burst brings call 3's answer.
        assert!(matches!(table.complete(3, Ok(3), 2), Completed::Wake(_)));
        assert_eq!(table.untaken(), 1, "only burst 2's answer counts");
        assert_eq!(
            table.waiting(),
            1,
            "every answer not yet taken is no longer waiting"
        );
        assert!(table.poll_answer(2, Waker::noop()).0.is_ready());
        assert_eq!(
            table.untaken(),
            1,
            "an answer of burst 1 taken changes nothing"
        );
        assert!(table.poll_answer(3, Waker::noop()).0.is_ready());
        assert_eq!(table.untaken(), 0);
        assert!(matches!(table.remove(1), Removed::Answered(Ok(1))));
        assert_eq!(table.untaken(), 0);
        // A failure (here the close) counts with the latest burst, until the next.
        assert_eq!(table.fail_all("gone", gone).len(), 1);
        assert_eq!(table.untaken(), 1);
    }

    #[test]
    fn a_waiting_caller_keeps_its_latest_waker() {
        let mut table = PendingTable::<u8>::default();
        let (first, waker1) = counting();
        let (second, waker2) = counting();
        table.register(1, waker1, None).unwrap();
        let (polled, replaced) = table.poll_answer(1, &waker2);
        assert!(polled.is_pending());
        assert!(replaced.is_some(), "the old waker is handed back");
        assert!(
            table.poll_answer(1, &waker2).1.is_none(),
            "the same waker is kept"
        );
        answer_and_wake(&mut table, 1, 1);
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn deadlines_expire_and_the_earliest_is_tracked() {
        let mut table = PendingTable::<u8>::default();
        let t0 = Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let noop = Waker::noop();
        assert_eq!(
            table.register(1, noop.clone(), Some(at(100))),
            Ok(true),
            "the first deadline"
        );
        assert_eq!(
            table.register(2, noop.clone(), Some(at(300))),
            Ok(false),
            "a later one"
        );
        assert_eq!(table.register(3, noop.clone(), None), Ok(false), "none");
        assert_eq!(
            table.register(4, noop.clone(), Some(at(50))),
            Ok(true),
            "an earlier one"
        );
        assert_eq!(table.earliest(), Some(at(50)));
        // Call 4 is answered and taken: the earliest stays until the next look.
        assert!(matches!(table.complete(4, Ok(4), 1), Completed::Wake(_)));
        assert!(table.poll_answer(4, noop).0.is_ready());
        assert!(table.expire(at(99), gone).is_empty());
        assert_eq!(table.earliest(), Some(at(100)));
        assert_eq!(table.expire(at(100), gone).len(), 1);
        assert_eq!(table.untaken(), 1);
        assert!(matches!(table.poll_answer(1, noop).0, Poll::Ready(Err(_))));
        assert_eq!(table.earliest(), Some(at(300)));
        // An answer that came before its deadline is not failed by it.
        assert!(matches!(table.complete(2, Ok(2), 1), Completed::Wake(_)));
        assert!(table.expire(at(1000), gone).is_empty(), "call 3 has none");
        assert!(matches!(table.poll_answer(2, noop).0, Poll::Ready(Ok(2))));
        assert_eq!(table.earliest(), None);
        assert_eq!(table.len(), 1);
    }
}
