//! The pending table's unit tests: no socket, no runtime.

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

/// Calls registered to count their timeout from the next stamp are not due before it; the stamp
/// gives each its own timeout from the time it is given, skips the calls taken meanwhile, and
/// tells the table's earliest deadline; the first of a burst tells the timer, the others not.
#[test]
fn deadlines_after_the_next_stamp() {
    let mut table = PendingTable::<u8>::default();
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let after = |ms| Deadline::After(Duration::from_millis(ms));
    let noop = Waker::noop();
    assert_eq!(
        table.register(1, noop.clone(), after(100)),
        Ok(true),
        "first"
    );
    assert_eq!(
        table.register(2, noop.clone(), after(50)),
        Ok(false),
        "second"
    );
    assert_eq!(
        table.register(3, noop.clone(), after(10)),
        Ok(false),
        "third"
    );
    assert!(table.has_unstamped());
    assert_eq!(
        table.earliest(),
        None,
        "no deadline is known before the stamp"
    );
    assert!(
        table.expire(at(10_000), gone).is_empty(),
        "none is due before it"
    );
    // Call 3 is answered and taken before the stamp.
    assert!(matches!(table.complete(3, Ok(3), 1), Completed::Wake(_)));
    assert!(table.poll_answer(3, noop).0.is_ready());
    table.stamp(at(1000));
    assert!(!table.has_unstamped());
    assert_eq!(table.earliest(), Some(at(1050)));
    assert!(table.expire(at(1049), gone).is_empty());
    assert_eq!(table.expire(at(1050), gone).len(), 1, "call 2");
    assert_eq!(table.earliest(), Some(at(1100)));
    assert_eq!(table.expire(at(1100), gone).len(), 1, "call 1");
    // The next burst tells the timer again; a stamp after a close has nothing to do.
    assert_eq!(table.register(4, noop.clone(), after(5)), Ok(true));
    table.fail_all("closed", gone);
    assert!(!table.has_unstamped());
    // A timeout too long to be an `Instant` is no deadline.
    let mut table = PendingTable::<u8>::default();
    table
        .register(5, noop.clone(), Deadline::After(Duration::MAX))
        .unwrap();
    table.stamp(t0);
    assert_eq!(table.earliest(), None);
    assert!(table.expire(at(10_000_000), gone).is_empty());
}
