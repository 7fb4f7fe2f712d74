//! The outbox: how frames get from many tasks onto one socket.
//!
//! Any task may queue a frame, and then flush: if no one else is writing, the flusher writes
//! everything queued so far, its own frames and every frame queued meanwhile by others, in as
//! few `write` calls as the socket takes; if someone else is writing, they write it. Many
//! pipelined calls share one syscall, and a lone call costs no task switch. Writes never wait
//! here: a write the socket cannot take now is left to the connection's writer task, which
//! waits for the socket to drain while the others keep queueing (and gives up on a peer that
//! takes nothing for `frame_timeout`). Because no write ever waits, a caller whose future is
//! dropped can never leave half a frame on the wire.
//!
//! When to flush is the callers' choice. The reader flushes what it queued itself (error
//! answers, pongs) when it has no more frames to read, and the task that first polls a burst's
//! handlers flushes their answers together, so a burst of pipelined calls is answered with one
//! write. A call is queued at its first poll; calls awaited together (`join_all`, a pipeline)
//! share one write (see `conn::pending_call`).
//!
//! Small frames are copied into one buffer as they are queued, large ones chained
//! ([`frame_queue`](super::frame_queue)). The answers a `current_thread` reader gathers in a
//! burst come in together ([`gather_buffer`]), before anything else queued from its thread.
//!
//! **Budget.** Everything queued counts against the connection's output budget
//! ([`Config::output_budget`](crate::Config::output_budget)) and the server's
//! [`MemoryBudget`]. Frames that can wait (calls, answers: [`Outbox::try_queue`]) are taken
//! while the queue is within two thirds of the budget; frames that cannot wait (errors, pongs,
//! cancels, decrefs: [`Outbox::queue`]) may use the last third, and one that would go past the
//! whole budget is refused: the peer sends but does not read, and the connection must close.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::codec::BuiltFrame;
use metrics::Counter;
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use super::Waiting;
use super::budget::{LARGE_FRAME, MemoryBudget, Overflow};
use super::frame_queue::{FrameQueue, Taken};
use super::gather_buffer;
use crate::lock::lock;

mod writer_task;

/// The write half of a transport.
pub(crate) type Sink = Box<dyn AsyncWrite + Send + Unpin>;

/// Queued frames waiting for a writer.
struct Queue {
    frames: FrameQueue,
    /// Set by [`Outbox::close`]: nothing more is queued.
    closed: bool,
}

/// The socket and what is left of a write that it could not take at once.
struct Writer {
    sink: Option<Sink>,
    /// Bytes taken from the queue but not yet written.
    unwritten: Taken,
    /// The writer task owns the socket until it has drained `unwritten`.
    blocked: bool,
}

pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    writer: Mutex<Writer>,
    wake_writer_task: Notify,
    /// The writer task was asked to write after the current burst (see
    /// [`Outbox::flush_after_burst`]).
    after_burst: AtomicBool,
    /// Notified whenever a writer (a flush or the writer task) has written everything.
    written: Notify,
    /// How many `all_written` calls are waiting (so that flushes skip the notify otherwise).
    waiting_for_written: AtomicUsize,
    /// Bytes queued or taken by a writer and not yet written.
    backlog: AtomicUsize,
    /// The output budget (bytes).
    budget: usize,
    /// The server-wide budget this outbox charges.
    memory: Arc<MemoryBudget>,
    /// Notified when bytes were written while someone waits for room.
    room: Notify,
    waiting_for_room: AtomicUsize,
    /// Counts the bytes written.
    sent: Counter,
    /// Names it in the thread's [`gather_buffer`].
    serial: u64,
}

/// Outcome of an attempt to write.
enum Progress {
    /// Everything was written.
    Done,
    /// The socket is full; `wrote` says whether it took anything before filling up.
    Blocked { wrote: bool },
}

impl Outbox {
    /// An outbox writing to `sink`, holding at most `budget` bytes, charging `memory`.
    pub(crate) fn new(
        sink: Sink,
        max_frame: usize,
        budget: usize,
        memory: Arc<MemoryBudget>,
        sent: Counter,
    ) -> Self {
        Outbox {
            queue: Mutex::new(Queue {
                frames: FrameQueue::new(max_frame),
                closed: false,
            }),
            writer: Mutex::new(Writer {
                sink: Some(sink),
                unwritten: Taken::default(),
                blocked: false,
            }),
            wake_writer_task: Notify::new(),
            after_burst: AtomicBool::new(false),
            written: Notify::new(),
            waiting_for_written: AtomicUsize::new(0),
            backlog: AtomicUsize::new(0),
            budget,
            memory,
            room: Notify::new(),
            waiting_for_room: AtomicUsize::new(0),
            sent,
            serial: gather_buffer::new_owner(),
        }
    }

    /// Above this many queued bytes, frames that can wait do wait.
    fn wait_threshold(&self) -> usize {
        self.budget / 3 * 2
    }

    /// `true` while more than a third of the budget is queued, or a frame waits for room: new
    /// incoming calls are refused.
    pub(crate) fn is_busy(&self) -> bool {
        self.backlog() > self.budget / 3 || self.waiting_for_room.load(Ordering::SeqCst) > 0
    }

    /// `true` while every frame that can wait must wait (the queue is past two thirds of the
    /// budget): no use encoding one now. (Whether the server's budget lets a frame in depends
    /// on its size: see [`Outbox::try_queue`].)
    pub(crate) fn is_full(&self) -> bool {
        self.backlog() > self.wait_threshold()
    }

    /// Queues a frame that cannot wait (length prefix added here); refused if it would take
    /// the queue past the output budget. Does not write: call [`Outbox::flush`].
    pub(crate) fn queue(&self, frame: BuiltFrame) -> Result<(), Overflow> {
        let mut q = lock(&self.queue);
        self.take_gathered(&mut q);
        let queued = self.backlog();
        if queued + 4 + frame.len() > self.budget {
            return Err(Overflow {
                queued,
                budget: self.budget,
            });
        }
        self.push(&mut q, frame);
        Ok(())
    }

    /// Queues a frame that can wait (a call, an answer) if there is room for it now: the
    /// queue is empty or stays within two thirds of the budget, and, for a large frame, the
    /// server's budget is not spent. Otherwise hands the frame back; wait with
    /// [`Outbox::room`] and try again. Runs `before` (under the queue's lock) when the frame
    /// is taken, before it can be written.
    pub(crate) fn try_queue(
        &self,
        frame: BuiltFrame,
        before: impl FnOnce(),
    ) -> Result<(), BuiltFrame> {
        let mut q = lock(&self.queue);
        self.take_gathered(&mut q);
        let queued = self.backlog();
        // Small frames never wait for the server's budget, so small calls keep being served
        // however much other connections hold; a large one waits, even into an empty queue.
        let memory_ok = frame.len() <= LARGE_FRAME || self.memory.has_room();
        let fits = (queued == 0 || queued + 4 + frame.len() <= self.wait_threshold()) && memory_ok;
        if !fits && !q.closed {
            return Err(frame);
        }
        before();
        self.push(&mut q, frame);
        Ok(())
    }

    fn push(&self, q: &mut Queue, frame: BuiltFrame) {
        if q.closed {
            // The connection is closing: the frame would never be written.
            return;
        }
        let added = match q.frames.push(frame) {
            Ok(added) => added,
            Err(e) => {
                // Callers check the size first.
                tracing::error!("could not queue a frame: {e}");
                return;
            }
        };
        self.count_queued(added);
    }

    /// What its frames are gathered under in the thread's [`gather_buffer`].
    pub(crate) fn gather_serial(&self) -> u64 {
        self.serial
    }

    /// Queues the frames gathered for it on this thread, if any (each while it was not
    /// [full](Outbox::is_full): 20 KiB past that at most). Does not write.
    pub(crate) fn queue_gathered(&self) {
        if gather_buffer::holds(self.serial) {
            let mut q = lock(&self.queue);
            self.take_gathered(&mut q);
        }
    }

    /// Under the queue's lock, before any other frame: those gathered on this thread.
    fn take_gathered(&self, q: &mut Queue) {
        gather_buffer::take(self.serial, |frames| {
            if !q.closed {
                self.count_queued(q.frames.push_prefixed(frames));
            }
        });
    }

    fn count_queued(&self, added: usize) {
        self.backlog.fetch_add(added, Ordering::SeqCst);
        self.memory.charge(added);
    }

    /// Resolves once some bytes have been written (or the outbox closed) after it was called:
    /// a frame that can wait may find room now.
    pub(crate) async fn room(&self) {
        let notified = self.room.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let _waiting = Waiting::new(&self.waiting_for_room);
        if self.is_closed() {
            return;
        }
        // Wait for bytes to be written here, or, if the server's budget is what is spent, for
        // it to be released anywhere.
        let memory = &self.memory;
        if memory.has_room() {
            if self.backlog() == 0 {
                return;
            }
            notified.await;
        } else {
            tokio::select! {
                _ = notified => {}
                _ = memory.wait_until(|| memory.has_room()) => {}
            }
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.queue).closed
    }

    /// Bytes were written: account for them.
    fn wrote(&self, n: usize) {
        self.sent.increment(n as u64);
        self.backlog.fetch_sub(n, Ordering::SeqCst);
        self.memory.release(n);
        if self.waiting_for_room.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Bytes queued and not yet taken by a writer.
    pub(crate) fn queued_len(&self) -> usize {
        lock(&self.queue).frames.len()
    }

    /// Moves everything queued to the end of `to`.
    fn take_queued(&self, to: &mut Taken) {
        let mut q = lock(&self.queue);
        q.frames.take_into(to);
    }

    /// Writes what is queued if no one else is writing; never waits. An error means the
    /// socket is broken: the connection must close.
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.queue_gathered();
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            {
                let Ok(mut w) = self.writer.try_lock() else {
                    // Someone else writes; they look at the queue again after unlocking.
                    return Ok(());
                };
                if w.blocked {
                    return Ok(());
                }
                if let Progress::Blocked { .. } = self.write_all_queued(&mut w, &mut cx)? {
                    w.blocked = true;
                    drop(w);
                    self.wake_writer_task.notify_one();
                    return Ok(());
                }
            }
            // A frame queued while we held the lock found it taken and left: write it. The
            // backlog says first whether anything is left at all (mostly nothing), read with a
            // read-modify-write, not a load: a queuer adds to it before its `try_lock`, so
            // either this reads its bytes, or its add reads this and so sees the lock released
            // (with a load, the memory model would let each miss the other; the queue's lock
            // ordered them before).
            if self.backlog.fetch_add(0, Ordering::SeqCst) == 0 || self.queued_len() == 0 {
                // Everything is written: wake whoever waits for that (`all_written`), also
                // when the writer task was not involved.
                if self.waiting_for_written.load(Ordering::SeqCst) > 0 {
                    self.written.notify_waiters();
                }
                return Ok(());
            }
        }
    }

    /// Writes `unwritten` and then the queue until both are empty or the socket is full.
    fn write_all_queued(&self, w: &mut Writer, cx: &mut Context<'_>) -> io::Result<Progress> {
        let Writer {
            sink, unwritten, ..
        } = w;
        let Some(sink) = sink.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is closed",
            ));
        };
        let mut wrote = false;
        loop {
            if unwritten.is_empty() {
                // All that was taken is written: the backlog is what is queued (the queue is
                // looked at, under its lock, only if that is anything).
                if self.backlog() > 0 {
                    self.take_queued(unwritten);
                }
                if unwritten.is_empty() {
                    return match Pin::new(sink).poll_flush(cx) {
                        Poll::Ready(r) => r.map(|()| Progress::Done),
                        Poll::Pending => Ok(Progress::Blocked { wrote }),
                    };
                }
            }
            match unwritten.write_some(sink, cx) {
                Poll::Ready(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the peer takes no more data",
                    ));
                }
                Poll::Ready(Ok(n)) => {
                    unwritten.consume(n);
                    self.wrote(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(Progress::Blocked { wrote }),
            }
        }
    }

    /// Asks the writer task to write what is queued, whoever else does or does not: for a
    /// frame queued by a future that may not be polled again soon.
    pub(crate) fn flush_soon(&self) {
        self.wake_writer_task.notify_one();
    }

    /// Asks the writer task to write what is queued once the tasks that are ready now have
    /// run (it yields once first): frames queued by everyone in the same burst, e.g. the next
    /// calls of a pipeline whose answers just arrived, or the cancels of a dropped batch, share
    /// one write. Costs a task switch, so a lone call flushes inline instead.
    pub(crate) fn flush_after_burst(&self) {
        // Read first: in a burst, every call but the first finds it asked already, and a
        // load costs less than a locked swap.
        if !self.after_burst.load(Ordering::SeqCst)
            && !self.after_burst.swap(true, Ordering::SeqCst)
        {
            self.wake_writer_task.notify_one();
        }
    }

    /// Bytes queued or taken by a writer and not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(Ordering::SeqCst)
    }

    /// Resolves once everything queued so far has been handed to the socket (or the socket
    /// is gone).
    pub(crate) async fn all_written(&self) {
        let _waiting = Waiting::new(&self.waiting_for_written);
        loop {
            let notified = self.written.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.flush().is_err() {
                return;
            }
            let blocked = {
                let w = lock(&self.writer);
                if w.sink.is_none()
                    || (!w.blocked && w.unwritten.is_empty() && self.queued_len() == 0)
                {
                    return;
                }
                w.blocked
            };
            if !blocked {
                // Not blocked, yet not all written: another flush holds the socket, or frames
                // came in after ours (whose flush may have found the lock taken by us here).
                // Only the writer task notifies after a blocked spell, so flush again rather
                // than wait.
                tokio::task::yield_now().await;
                continue;
            }
            notified.await;
        }
    }

    /// Drops the socket (the peer sees the connection close) and whatever was not written;
    /// later flushes fail and later frames are dropped.
    pub(crate) fn close(&self) {
        let (sink, mut unwritten) = {
            let mut w = lock(&self.writer);
            (w.sink.take(), std::mem::take(&mut w.unwritten))
        };
        drop(sink);
        let unwritten_len = unwritten.len();
        let queued = {
            let mut q = lock(&self.queue);
            q.closed = true;
            // Gathered here and never to be written: not held for ever.
            self.take_gathered(&mut q);
            q.frames.clear()
        };
        unwritten.clear();
        self.wrote(unwritten_len + queued);
        self.wake_writer_task.notify_one();
        self.written.notify_waiters();
        self.room.notify_waiters();
    }
}
