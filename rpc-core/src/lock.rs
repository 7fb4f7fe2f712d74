//! The locks of the tables a call goes through, and [`lock`], which takes any of them.
//!
//! A call takes a few short locks: its connection's pending table three times (registered,
//! answered, taken), the outbox's queue once, and on the other side the admission table once.
//! A `std::sync::Mutex` costs two locked instructions for each (a compare-and-swap to take it,
//! a swap to release it and learn whether a sleeper must be woken), about 9 ns each on the
//! 2-core VM: a tenth of a call at 64 in flight. These tables use a [`SpinLock`] instead,
//! released with a plain store. Their critical sections are a few dozen instructions, never
//! await, and drop nothing that runs other code (wakers and answers are handed out to be
//! dropped after the lock). Only a timer's scan of the pending table (`PendingTable::expire`),
//! or closing a connection, takes longer; a thread that finds the lock taken yields its time
//! slice to the scheduler until it is free rather than spin on a core the holder may need.

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
