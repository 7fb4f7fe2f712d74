//! The reader task: reads frames and hands each to the router, until the connection closes.
//!
//! It never stops reading because the outbox is full (two peers that both did would wait for
//! each other for ever); the output budget and `Overloaded` refusals bound what the peer can
//! make this side queue instead. It notes the time for the keepalive once per burst of
//! frames. On a `current_thread` runtime it first-polls each call's handler itself as the call
//! is routed (see `handlers`); elsewhere, when a burst ends, it hands the calls of the burst to
//! a task (`handlers::run_burst`), which writes their answers together. When a burst ends it
//! writes what it queued itself (on `current_thread`, those answers too).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::runtime::RuntimeFlavor;
use tokio::time::Instant;

use super::handlers::{Watchdog, first_poll_fresh, run_burst};
use super::incoming::{BurstClock, Permanent, Started};
use super::lifecycle::{Closed, lock};
use super::router::route_frame;
use super::shared::Shared;
use super::slot::SlotReturns;
use crate::io::frame_reader::{FrameReader, ReadError};

/// Closes the connection when dropped, whatever ended the task holding it (a panic
/// included): a connection is never left half alive.
pub(crate) struct CloseOnExit {
    pub(crate) shared: Arc<Shared>,
    pub(crate) task: &'static str,
}

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        // Whatever the task gathered on this thread and did not queue (it stopped in the
        // middle of a burst): queued, or dropped if the connection is closed.
        self.shared.outbox.queue_gathered();
        if !self.shared.is_closed() {
            let why = if std::thread::panicking() {
                format!("the connection's {} task panicked", self.task)
            } else {
                format!("the connection's {} task ended", self.task)
            };
            self.shared.close(Closed::Local(why));
        }
    }
}

/// Reads and routes frames until the peer closes, breaks the protocol, or this side closes.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut frames: FrameReader<R>,
    permanent: Permanent,
) {
    let _close = CloseOnExit {
        shared: Arc::clone(&shared),
        task: "reader",
    };
    // Registered once, not on every wait.
    let closed = shared.lifecycle.token().clone();
    let mut closed = std::pin::pin!(closed.cancelled());
    let mut close_watch = CloseWatch::default();
    let watchdog = Arc::new(Watchdog::default());
    let on_this_thread =
        tokio::runtime::Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread;
    let mut burst = Burst::new(on_this_thread);
    let why = loop {
        if shared.is_closed() {
            // Closed by another task (a broken limit, a local close): read no more.
            return;
        }
        // The frames of a burst already in the buffer first (a future is large to make and
        // move); then one try to read more, with the future kept for the wait if it finds
        // nothing.
        let next = match frames.buffered_frame() {
            Ok(None) => {
                let mut read = std::pin::pin!(frames.next_frame());
                match futures::poll!(read.as_mut()) {
                    Poll::Ready(next) => next,
                    Poll::Pending => {
                        // Nothing more to read right now: the burst is over. Its handlers are
                        // first-polled elsewhere and write their answers together (on a
                        // current_thread runtime they were, here, as their calls came); what
                        // the reader itself queued (error answers, pongs, here those answers
                        // too) is written now.
                        burst.end(&shared, &watchdog);
                        // The read was polled just now, by this task, and found nothing: it is
                        // polled again only once the task is woken (by the socket, or by the
                        // close). Then the read first: a wake that brings a frame does not
                        // look at the close, which is checked once the wait is over (and once
                        // per frame at the top of the loop).
                        let mut just_polled = true;
                        let next = std::future::poll_fn(|cx| {
                            if !std::mem::take(&mut just_polled)
                                && let Poll::Ready(next) = read.as_mut().poll(cx)
                            {
                                return Poll::Ready(Some(next));
                            }
                            close_watch
                                .poll(closed.as_mut(), &shared, cx)
                                .map(|()| None)
                        })
                        .await;
                        let Some(next) = next else {
                            return;
                        };
                        if shared.is_closed() {
                            // Closed while waiting (by `Burst::end`'s flush, or elsewhere) with
                            // a frame there too: it is not routed.
                            return;
                        }
                        next
                    }
                }
            }
            found => found,
        };
        match next {
            Ok(None) => break Closed::Transport("the peer closed the connection".into()),
            Err(ReadError::Protocol(m)) => break Closed::Protocol(m),
            // Over TLS, a peer that ends without a close_notify (killed, crashed) reads as an
            // unexpected end: say so in words, not with rustls's manual link.
            Err(ReadError::Transport(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break Closed::Transport(
                    "the peer closed the connection abruptly (no TLS close_notify: it may have \
                     been killed or crashed)"
                        .into(),
                );
            }
            Err(ReadError::Transport(e)) => {
                break Closed::Transport(format!("reading from the peer failed: {e}"));
            }
            Ok(Some(frame)) => {
                if let Err(why) = burst.route(&shared, &permanent, frame.freeze()) {
                    break why;
                }
            }
        }
        if shared.outbox.backlog() >= 64 * 1024 {
            shared.flush();
        }
    };
    // The answers gathered before the frame that ended it go with what is queued: closing
    // writes that first, if the socket takes it.
    drop(burst);
    shared.close(why);
}

/// The burst of frames the reader is reading: from the first frame it reads after a wait for
/// the socket, until it finds nothing more to read.
struct Burst {
    /// When it began to be read: the start of its calls, and the end of the calls it answers.
    clock: BurstClock,
    /// Frames were routed in it.
    any: bool,
    /// Its calls, handed to `handlers` when it ends (on a multi-threaded runtime).
    started: Vec<Started>,
    /// On a `current_thread` runtime the reader first-polls each handler as its call is
    /// routed (see `handlers`): the end of the calls answered there, read at the first answer.
    answered: Option<BurstClock>,
    /// A handler was first-polled in it: it may have run for long (its start is then no
    /// longer when its frames came).
    polled: bool,
    /// What the calls that ended in their first poll here gave back (see `slot`).
    returns: SlotReturns,
    /// The method name of the last call admitted, as its object declares it (see
    /// `route_frame`): kept from one burst to the next.
    known_method: Option<&'static str>,
}

impl Burst {
    fn new(on_this_thread: bool) -> Self {
        Burst {
            clock: BurstClock::default(),
            any: false,
            started: Vec::new(),
            answered: on_this_thread.then(BurstClock::default),
            polled: false,
            returns: SlotReturns::default(),
            known_method: None,
        }
    }

    /// Routes one frame of the burst; a call is first-polled at once or kept for its end.
    /// Inlined in the read loop, and the call matched where it is routed: otherwise it is
    /// moved about with `memcpy` (130 instructions more per call at 64 in flight, callgrind).
    #[inline(always)]
    fn route(
        &mut self,
        shared: &Arc<Shared>,
        permanent: &Permanent,
        frame: Bytes,
    ) -> Result<(), Closed> {
        self.any = true;
        match route_frame(
            shared,
            (&mut self.clock, &mut self.returns),
            permanent,
            &mut self.known_method,
            frame,
        ) {
            Ok(Some(call)) => match &mut self.answered {
                Some(answered) => {
                    self.polled = true;
                    first_poll_fresh(shared, (answered, &mut self.returns), call);
                }
                None => self.started.push(call),
            },
            Ok(None) => {}
            Err(why) => return Err(why),
        }
        Ok(())
    }

    /// The burst is over: its calls go to `handlers` (if the reader did not first-poll them),
    /// the clocks start again, and what the reader queued goes out (with what the callers its
    /// answers woke send, if any are yet to run).
    fn end(&mut self, shared: &Arc<Shared>, watchdog: &Arc<Watchdog>) {
        if !self.started.is_empty() {
            run_burst(shared, watchdog, std::mem::take(&mut self.started));
        }
        // The slot of the call that ended last leaves the admission table (see `slot`).
        self.returns.settle(shared);
        // The answers gathered in it (see `gathered`).
        shared.outbox.queue_gathered();
        let began = self.clock.reset();
        if let Some(answered) = &mut self.answered {
            answered.reset();
        }
        let polled = std::mem::take(&mut self.polled);
        if !std::mem::take(&mut self.any) {
            return;
        }
        // For the keepalive: the burst's start, read already, if it ran no handler (it took
        // microseconds then); else now.
        let heard = match began {
            Some(began) if !polled => began,
            _ => Instant::now(),
        };
        shared.note_received(heard);
        if shared.outbox.backlog() > 0 {
            if lock(&shared.pending).untaken() > 0 {
                // The callers the burst's answers woke are to run yet (on other threads,
                // maybe): what they send goes out with this.
                shared.outbox.flush_after_burst();
            } else {
                shared.flush();
            }
        }
    }
}

/// Watches for the connection's close while the reader waits, without polling the close's
/// future at every wait (that takes two locks each time): the future is polled once with the
/// task's waker, which it keeps and wakes when the connection closes; until the waker changes,
/// the close is seen in the flag that is set before that wake.
#[derive(Default)]
struct CloseWatch {
    /// The waker the close's future holds.
    registered: Option<Waker>,
}

impl CloseWatch {
    fn poll(
        &mut self,
        closed: Pin<&mut impl Future<Output = ()>>,
        shared: &Shared,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if shared.is_closed() {
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        self.registered = Some(cx.waker().clone());
        closed.poll(cx)
    }
}
