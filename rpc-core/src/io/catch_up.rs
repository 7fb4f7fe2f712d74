//! How the writer task waits for callers on other threads before it writes (see
//! `Outbox::run_writer_task`).
//!
//! On a runtime with several worker threads, or with a caller in `block_on`, the tasks that a
//! burst of answers wakes run in parallel with the writer: a writer that wrote as soon as the
//! first of them queued its next call would write a few calls at a time. Instead it waits,
//! yielding, while they have answers left to take, and writes what they all queued.

use std::time::{Duration, Instant};

/// How long the writer waits, yielding, for the callers woken by a burst of answers while
/// none of them takes its answer (see [`catch_up`]).
const CATCH_UP_STALL: Duration = Duration::from_micros(50);

/// How long the writer waits for them at most, however they progress.
const CATCH_UP_MAX: Duration = Duration::from_millis(1);

/// Waits, yielding (never sleeping), while callers woken by a burst of answers have yet to
/// take them (`callers_behind` counts them): they run on other threads (a runtime with several
/// workers, a caller in `block_on`), and the calls they make next go out in the writer's next
/// write. It stops as soon as all have, when none has for `CATCH_UP_STALL` (a caller busy
/// elsewhere, or holding a call it does not poll), or after `CATCH_UP_MAX`. Nothing is spent
/// when they all ran during the writer's first yield, as on a current_thread runtime.
pub(crate) async fn catch_up(callers_behind: &impl Fn() -> usize) {
    let mut behind = callers_behind();
    if behind == 0 {
        return;
    }
    let since = Instant::now();
    let mut progressed = since;
    loop {
        tokio::task::yield_now().await;
        let now_behind = callers_behind();
        if now_behind == 0 {
            // The last of them has its answer, and may be making its next call right now.
            tokio::task::yield_now().await;
            return;
        }
        let now = Instant::now();
        if now_behind < behind {
            progressed = now;
        }
        behind = now_behind;
        if now - progressed >= CATCH_UP_STALL || now - since >= CATCH_UP_MAX {
            return;
        }
    }
}
