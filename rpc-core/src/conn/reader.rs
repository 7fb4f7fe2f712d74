//! The reader task: reads frames and hands each to the router, until the connection closes.
//!
//! It never stops reading because the outbox is full (two peers that both did would wait for
//! each other for ever); the output budget and `Overloaded` refusals bound what the peer can
//! make this side queue instead. It notes the time for the keepalive once per burst of
//! frames. On a `current_thread` runtime it first-polls each call's handler itself as the call
//! is routed (see `handlers`); elsewhere, when a burst ends, it hands the calls of the burst to
//! a task (`handlers::run_burst`), which writes their answers together. When a burst ends it
//! writes what it queued itself (on `current_thread`, those answers too).

use std::sync::Arc;
use std::task::Poll;

use tokio::io::AsyncRead;
use tokio::runtime::RuntimeFlavor;
use tokio::time::Instant;

use super::handlers::{Watchdog, first_poll, run_burst};
use super::incoming::{BurstClock, Permanent, Started};
use super::lifecycle::{Closed, lock};
use super::router::route_frame;
use super::shared::Shared;
use crate::io::frame_reader::{FrameReader, ReadError};

/// Closes the connection when dropped, whatever ended the task holding it (a panic
/// included): a connection is never left half alive.
pub(crate) struct CloseOnExit {
    pub(crate) shared: Arc<Shared>,
    pub(crate) task: &'static str,
}

impl Drop for CloseOnExit {
    fn drop(&mut self) {
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
    let mut in_burst = false;
    let watchdog = Arc::new(Watchdog::default());
    // On a `current_thread` runtime the handlers are first-polled here, each as its call is
    // routed (see `handlers`); elsewhere a burst's calls go to a task when the burst ends.
    let on_this_thread =
        tokio::runtime::Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread;
    let mut started = Vec::new();
    let mut clock = BurstClock::default();
    // The end of the calls first-polled here: read once per burst, at the first answer.
    let mut answered = BurstClock::default();
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
                        end_burst(
                            &shared,
                            &watchdog,
                            &mut started,
                            &mut clock,
                            &mut answered,
                            &mut in_burst,
                        );
                        // The read first: a wake that brings a frame does not poll the close,
                        // which is checked, more cheaply, once the wait is over (and once per
                        // frame at the top of the loop).
                        let next = tokio::select! {
                            biased;
                            next = &mut read => next,
                            _ = &mut closed => return,
                        };
                        if shared.is_closed() {
                            // Closed while waiting (by `end_burst`'s flush, or elsewhere) with
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
                in_burst = true;
                match route_frame(&shared, &mut clock, &permanent, frame.freeze()) {
                    Ok(Some(call)) if on_this_thread => first_poll(&shared, &mut answered, call),
                    Ok(Some(call)) => started.push(call),
                    Ok(None) => {}
                    Err(why) => break why,
                }
            }
        }
        if shared.outbox.backlog() >= 64 * 1024 {
            shared.flush();
        }
    };
    drop(started);
    shared.close(why);
}

/// A burst of frames is over: its calls go to `handlers` (if the reader did not first-poll
/// them itself), the clocks start again, and what the reader queued goes out (with what the
/// callers its answers woke send, if any are yet to run).
fn end_burst(
    shared: &Arc<Shared>,
    watchdog: &Arc<Watchdog>,
    started: &mut Vec<Started>,
    clock: &mut BurstClock,
    answered: &mut BurstClock,
    in_burst: &mut bool,
) {
    if !started.is_empty() {
        run_burst(shared, watchdog, std::mem::take(started));
    }
    answered.reset();
    let began = clock.reset();
    if std::mem::take(in_burst) {
        // The burst's time if it was read (a burst of calls or answers), else now.
        shared.note_received(began.unwrap_or_else(Instant::now));
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
