//! The connection's writer task ([`Outbox::run_writer_task`]): it writes what a flush could
//! not, once the socket drains, and what callers asked to be written after their burst.

use std::io;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use super::{Outbox, Progress};
use crate::io::catch_up::catch_up;
use crate::lock::lock;

/// Lets the tasks queued to run on this worker now run before the caller goes on: it goes to
/// the back of the run queue (tokio reschedules a task that woke itself as one that yields).
/// Unlike `tokio::task::yield_now`, it does not also wait for the runtime to poll its I/O
/// driver, which costs an `epoll_wait` each time: the tasks a burst of answers woke are queued
/// already.
async fn behind_queued_tasks() {
    let mut queued = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut queued, true) {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

impl Outbox {
    /// The writer task's job: whenever a flush found the socket full, wait until it drains
    /// and write everything queued. Returns on a write error, or when the peer has taken no
    /// byte for `stall_timeout` while data waits (it stopped reading).
    ///
    /// `callers_behind` counts the callers woken by answers that have yet to take them: after a
    /// [`flush_after_burst`](Self::flush_after_burst) the writer waits for them a little (see
    /// [`catch_up`](super::catch_up)).
    pub(crate) async fn run_writer_task(
        &self,
        stall_timeout: Duration,
        callers_behind: impl Fn() -> usize,
    ) -> io::Error {
        loop {
            self.wake_writer_task.notified().await;
            if self.after_burst.swap(false, Ordering::SeqCst) {
                // Let the tasks woken with the one that asked run first: what they queue
                // goes out in this same write.
                if callers_behind() == 0 {
                    // Those queued already: the writer goes behind them.
                    behind_queued_tasks().await;
                } else {
                    // Callers still to take their answers, maybe one in `block_on`, which a
                    // current_thread runtime polls only once its queue is empty and its
                    // driver polled: as far as that (and see `catch_up`).
                    tokio::task::yield_now().await;
                }
                catch_up(&callers_behind).await;
            }
            loop {
                // Wait until the socket takes something, for at most `stall_timeout`.
                let step = std::future::poll_fn(|cx| {
                    let mut w = lock(&self.writer);
                    match self.write_all_queued(&mut w, cx) {
                        Ok(Progress::Done) => {
                            w.blocked = false;
                            Poll::Ready(Ok(true))
                        }
                        Ok(Progress::Blocked { wrote: true }) => Poll::Ready(Ok(false)),
                        Ok(Progress::Blocked { wrote: false }) => Poll::Pending,
                        Err(e) => Poll::Ready(Err(e)),
                    }
                });
                match tokio::time::timeout(stall_timeout, step).await {
                    Ok(Ok(true)) => break,
                    Ok(Ok(false)) => continue,
                    Ok(Err(e)) => return e,
                    Err(_) => {
                        return io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the peer has read nothing for {stall_timeout:?} while {} bytes \
                                 waited to be sent to it",
                                self.backlog()
                            ),
                        );
                    }
                }
            }
            if let Err(e) = self.flush() {
                return e;
            }
            self.written.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::behind_queued_tasks;

    #[tokio::test(flavor = "current_thread")]
    async fn the_tasks_queued_before_it_run_first() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let note = |what: &'static str| {
            let order = Arc::clone(&order);
            move || order.lock().unwrap().push(what)
        };
        let (before, after) = (note("before"), note("after"));
        let yielding = tokio::spawn(async move {
            before();
            behind_queued_tasks().await;
            after();
        });
        let others: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|name| {
                let noted = note(name);
                tokio::spawn(async move { noted() })
            })
            .collect();
        yielding.await.unwrap();
        for other in others {
            other.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["before", "first", "second", "after"]
        );
    }
}
