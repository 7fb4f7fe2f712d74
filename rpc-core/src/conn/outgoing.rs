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
use std::time::Duration;

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
    /// Calls registered with [`Deadline::After`] since the table was last
    /// [stamped](Self::stamp).
    unstamped: Vec<u64>,
}

/// When a call fails unless it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    None,
    At(Instant),
    /// Its timeout, counted from when the table is next [stamped](PendingTable::stamp): the
    /// calls registered in one burst share one read of the clock, taken after them (so each
    /// gets its whole timeout, and at most the time to the stamp more).
    After(Duration),
}

impl Deadline {
    /// `timeout` after `now` (none, if that is too far away to be an `Instant`).
    pub(crate) fn at(now: Instant, timeout: Duration) -> Deadline {
        now.checked_add(timeout)
            .map_or(Deadline::None, Deadline::At)
    }
}

#[cfg(test)]
impl From<Option<Instant>> for Deadline {
    fn from(at: Option<Instant>) -> Self {
        at.map_or(Deadline::None, Deadline::At)
    }
}

/// One call: still waiting (with the waker of its caller), or answered.
struct Entry<T> {
    state: State<T>,
    deadline: Deadline,
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
            unstamped: Vec::new(),
        }
    }
}

impl<T> PendingTable<T> {
    /// Registers call `id`, whose caller `waker` is woken when it ends, to fail at `deadline`
    /// if it is not answered by then; refused (with the reason) once the connection has
    /// closed. `Ok(true)`: the timer must be told, as its deadline is now the earliest, or it
    /// is the first to wait for a [stamp](Self::stamp).
    pub(crate) fn register(
        &mut self,
        id: u64,
        waker: Waker,
        deadline: impl Into<Deadline>,
    ) -> Result<bool, String> {
        self.settled_ids += 1;
        if let Some(reason) = &self.closed {
            return Err(reason.clone());
        }
        let deadline = deadline.into();
        let state = State::Waiting(waker);
        self.pending.insert(id, Entry { state, deadline });
        Ok(match deadline {
            Deadline::None => false,
            Deadline::At(at) => self.note_deadline(at),
            Deadline::After(_) => {
                self.unstamped.push(id);
                self.unstamped.len() == 1
            }
        })
    }

    /// A waiting call's deadline is `at`: `true` if that is now the earliest.
    fn note_deadline(&mut self, at: Instant) -> bool {
        let earlier = self.earliest.is_none_or(|earliest| at < earliest);
        if earlier {
            self.earliest = Some(at);
        }
        earlier
    }

    /// `true` while calls registered with [`Deadline::After`] wait for a [stamp](Self::stamp).
    pub(crate) fn has_unstamped(&self) -> bool {
        !self.unstamped.is_empty()
    }

    /// Counts the timeout of every call registered with [`Deadline::After`] since the last
    /// stamp from `now`, the time the timer read when it came to it.
    pub(crate) fn stamp(&mut self, now: Instant) {
        let mut unstamped = std::mem::take(&mut self.unstamped);
        for id in unstamped.drain(..) {
            let Some(entry) = self.pending.get_mut(id) else {
                // Answered and taken already.
                continue;
            };
            if let Deadline::After(timeout) = entry.deadline {
                entry.deadline = Deadline::at(now, timeout);
                if let (Deadline::At(at), State::Waiting(_)) = (entry.deadline, &entry.state) {
                    self.note_deadline(at);
                }
            }
        }
        // Its memory, kept for the next burst.
        self.unstamped = unstamped;
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
            // One not stamped yet is not due: it counts from the next stamp.
            let Deadline::At(deadline) = entry.deadline else {
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
        self.unstamped = Vec::new();
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
#[path = "outgoing_tests.rs"]
mod tests;
