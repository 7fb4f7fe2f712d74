//! Group commit: one thread owns the [`Store`] and the [`Sequence`]; callers ask it for
//! numbers through a channel, and it answers a whole batch per durable commit.
//!
//! The thread waits for a request, then takes every other request already waiting (up to
//! [`MAX_BATCH`]), advances the sequence once for each, saves the new state in ONE redb
//! transaction (one fsync), and only then answers them all. So:
//!
//! - a number reaches a caller only once it is on disk: after `kill -9` at any moment, the
//!   saved state is past every number ever answered, and none is handed out again;
//! - a number saved but not answered (killed between the commit and the answer, or the
//!   caller gone) is skipped: a gap, never a repeat;
//! - with one caller there is one fsync per number; with many, the requests that arrive
//!   during one fsync share the next: the disk sets the pace of commits, not of numbers.
//!
//! This is the pattern for any stateful pbrs service: one owner of the state, requests
//! batched into one transaction, committed before anyone is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use super::sequence::Sequence;
use super::store::{Store, StoreError};

/// The most requests one commit answers: bounds the time a batch takes.
pub const MAX_BATCH: usize = 4096;

/// Why a caller got no number; travels to the caller as the method's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FibError {
    /// Saving failed, and the server stops handing out numbers (its log says why: the
    /// caller is not told the server's paths).
    #[error("the server could not save its sequence and is stopping; ask again once it is back")]
    Storage,
    /// The server is shutting down.
    #[error("the server is stopping; ask again once it is back")]
    Stopping,
}

/// How much the committer did since it started: fsyncs per number is
/// `commits / numbers`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStats {
    /// Numbers handed out.
    pub numbers: u64,
    /// Durable commits made for them, one fsync each.
    pub commits: u64,
}

/// What the committer's thread takes from its channel.
enum Request {
    /// A number, answered on this channel once it is saved.
    Next(oneshot::Sender<Result<BigUint, FibError>>),
    /// Answer what came before, then stop.
    Stop,
}

/// What the handle and the thread share.
struct Shared {
    numbers: AtomicU64,
    commits: AtomicU64,
    /// How the thread ended, once it has (its store closed by then).
    outcome: Mutex<Option<Result<(), StoreError>>>,
    /// `true` once the thread has ended.
    done: watch::Sender<bool>,
}

/// The handle to the thread that owns the store: ask it for numbers, read its counters, stop
/// it.
pub struct Committer {
    requests: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
}

impl Committer {
    /// Starts the owning thread on `store`, whose saved state is `sequence`.
    pub fn start(store: Store, sequence: Sequence) -> Committer {
        let (requests, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            numbers: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            outcome: Mutex::new(None),
            done: watch::Sender::new(false),
        });
        let owner = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("fib-committer".into())
            .spawn(move || {
                let outcome = run(store, sequence, receiver, &owner);
                *owner.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
                owner.done.send_replace(true);
            })
            .expect("cannot start the committer thread");
        Committer { requests, shared }
    }

    /// The next number, once it is saved durably.
    ///
    /// # Errors
    /// [`FibError`] when the committer stopped, or could not save.
    pub async fn next(&self) -> Result<BigUint, FibError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Next(reply))
            .map_err(|_| FibError::Stopping)?;
        answer.await.map_err(|_| FibError::Stopping)?
    }

    /// The counters so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            numbers: self.shared.numbers.load(Ordering::Relaxed),
            commits: self.shared.commits.load(Ordering::Relaxed),
        }
    }

    /// Resolves once the thread has ended: stopped, or failed to save.
    pub fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut done = self.shared.done.subscribe();
        async move {
            let _ = done.wait_for(|done| *done).await;
        }
    }

    /// Answers the requests made so far, stops the thread and closes the store; returns how
    /// the thread ended (the first time; `Ok` after). Later requests get
    /// [`FibError::Stopping`].
    ///
    /// # Errors
    /// The [`StoreError`] that stopped it, if saving failed.
    pub async fn stop(&self) -> Result<(), StoreError> {
        let _ = self.requests.send(Request::Stop);
        self.ended().await;
        let outcome = self
            .shared
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        outcome.unwrap_or(Ok(()))
    }
}

/// The owning thread: batch, advance, commit, answer; until stopped or saving fails.
fn run(
    store: Store,
    mut sequence: Sequence,
    mut requests: mpsc::UnboundedReceiver<Request>,
    shared: &Shared,
) -> Result<(), StoreError> {
    let mut batch = Vec::new();
    while let Some(first) = requests.blocking_recv() {
        let mut stop = false;
        let mut request = Some(first);
        while let Some(taken) = request.take() {
            match taken {
                // A caller already gone gets no number: no gap for nothing.
                Request::Next(reply) if reply.is_closed() => {}
                Request::Next(reply) => batch.push(reply),
                Request::Stop => {
                    stop = true;
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                request = requests.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let numbers: Vec<BigUint> = batch.iter().map(|_| sequence.advance()).collect();
            if let Err(e) = store.save(&sequence) {
                for reply in batch.drain(..) {
                    let _ = reply.send(Err(FibError::Storage));
                }
                return Err(e);
            }
            shared.commits.fetch_add(1, Ordering::Relaxed);
            shared
                .numbers
                .fetch_add(numbers.len() as u64, Ordering::Relaxed);
            for (reply, number) in batch.drain(..).zip(numbers) {
                let _ = reply.send(Ok(number));
            }
        }
        if stop {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_get_the_sequence_in_order_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let (store, sequence) = Store::open(dir.path()).unwrap();
        let committer = Arc::new(Committer::start(store, sequence));
        let callers = (0..64).map(|_| {
            let committer = Arc::clone(&committer);
            tokio::spawn(async move { committer.next().await })
        });
        let mut got = Vec::new();
        for caller in callers {
            got.push(caller.await.unwrap().unwrap());
        }
        got.sort();
        assert_eq!(got, Sequence::new().take(64).collect::<Vec<_>>());
        let stats = committer.stats();
        assert_eq!(stats.numbers, 64);
        assert!((1..=64).contains(&stats.commits), "{stats:?}");
        committer.stop().await.unwrap();
        assert_eq!(committer.next().await, Err(FibError::Stopping));
        // Stopped means closed: the store opens again, past all 64.
        let (_store, after) = Store::open(dir.path()).unwrap();
        assert_eq!(after.index(), 64);
    }
}
