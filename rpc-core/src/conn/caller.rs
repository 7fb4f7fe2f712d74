//! The connection whose call a handler is serving, while that handler is polled: what
//! [`Peer::current`](crate::Peer::current) reads.
//!
//! Like a tokio task-local, but [`WithCaller`] is `Unpin` when its future is, and the caller
//! is swapped back out after every poll, also when the poll panics.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::shared::Shared;

thread_local! {
    /// The connection of the handler being polled on this thread, if any.
    static CURRENT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// The connection of the handler being polled on this thread.
pub(crate) fn current() -> Option<Arc<Shared>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// A future polled with a given current caller (or explicitly with none).
pub(crate) struct WithCaller<F> {
    caller: Option<Arc<Shared>>,
    fut: F,
}

impl<F> WithCaller<F> {
    /// `fut`, polled with `caller` as the current caller (`None`: with no caller, even when
    /// polled from inside a handler: a call of a local object).
    pub(crate) fn new(caller: Option<Arc<Shared>>, fut: F) -> Self {
        WithCaller { caller, fut }
    }
}

impl<F: Future + Unpin> Future for WithCaller<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        as_caller(&mut this.caller, || Pin::new(&mut this.fut).poll(cx))
    }
}

/// Runs `poll` with `caller` as the current caller: it is moved in for that time, not
/// cloned (no count taken and given back), and moved back after, also when `poll` panics.
pub(crate) fn as_caller<R>(caller: &mut Option<Arc<Shared>>, poll: impl FnOnce() -> R) -> R {
    struct Restore<'a>(&'a mut Option<Arc<Shared>>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), self.0));
        }
    }
    CURRENT.with(|c| std::mem::swap(&mut *c.borrow_mut(), caller));
    let _restore = Restore(caller);
    poll()
}
