//! The locks of the tables a call goes through, and [`lock`], which takes any of them.
//!
//! A call takes a few short locks: its connection's pending table three times (registered,
//! answered, taken), on the other side the admission table once, and the outbox's queue once.
//! A `std::sync::Mutex` costs two locked instructions for each (a compare-and-swap to take it,
//! a swap to release it and learn whether a sleeper must be woken), about 9 ns each on the
//! 2-core VM. The pending and admission tables use a [`SpinLock`] instead, released with a
//! plain store: with 64 calls in flight, about 3 % more calls a second (`rpc-bench`, three
//! pairs of runs). A thread that finds one taken yields its time slice to the scheduler until it is
//! free, rather than sleep until woken as on a `Mutex`.
//!
//! That is sound because what runs under them is bounded and takes no lock of the application
//! or of the same table: no section awaits (nothing checks it at compile time for a spin guard,
//! so `clippy.toml` lists it for `await_holding_invalid_type`), and no section drops an answer
//! or wakes a caller (those are handed out, to be dropped or woken after the lock). What does
//! run under them, and costs a waiting thread more than a few instructions of yielding:
//!
//! - in the pending table: cloning the caller's waker as a call registers (its executor's
//!   code), a clock read for a lone call's deadline, and three sections that take time in
//!   proportion to the calls in the table, on a connection with very many: the timer's scan
//!   for expired deadlines (`PendingTable::expire`, spaced out by the timer as the table
//!   grows), failing every call when the connection closes, and growing the table;
//! - in the admission table: dropping a running handler's cancel channel (which wakes the
//!   handler's tokio task) as a call ends or is cancelled, and for every call in flight when
//!   the connection closes (at most `max_in_flight_calls`).
//!
//! The outbox's queue keeps its `Mutex`: a frame queued runs code under its lock (an answer's
//! slot is freed, a call's exports are committed, taking the export table's lock), and a
//! large frame is copied there.

use std::sync::{Mutex, MutexGuard};

/// A lock whose release is a plain store; a thread that finds it taken yields until it is free.
pub(crate) type SpinLock<T> = spin::mutex::SpinMutex<T, spin::relax::Yield>;

/// A held [`SpinLock`].
pub(crate) type SpinGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

/// Locks `m`, ignoring poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<L: Lock>(m: &L) -> L::Guard<'_> {
    m.lock_now()
}

/// A lock [`lock`] takes.
pub(crate) trait Lock {
    type Guard<'a>
    where
        Self: 'a;
    fn lock_now(&self) -> Self::Guard<'_>;
}

impl<T> Lock for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn lock_now(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> Lock for SpinLock<T> {
    type Guard<'a>
        = SpinGuard<'a, T>
    where
        T: 'a;
    fn lock_now(&self) -> SpinGuard<'_, T> {
        self.lock()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Threads taking turns on one lock, more of them than cores, each adding under it: no
    /// add is lost, and every thread gets through (a waiting thread yields to the holder).
    #[test]
    fn threads_taking_turns_lose_nothing() {
        let total = Arc::new(SpinLock::new(0u64));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let total = Arc::clone(&total);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *lock(&*total) += 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(*lock(&*total), 160_000);
    }
}
