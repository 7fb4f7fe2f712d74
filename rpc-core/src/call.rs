//! [`CallFuture`]: what every call returns, remote or local.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::{Instant, Sleep};

use crate::conn::caller::WithCaller;
use crate::conn::pending_call::PendingCall;
use crate::error::{CallError, RemoteErrorKind, TimeoutKind};
use crate::telemetry::{Direction, Outcome, record_call};

type LocalCall<R> = Pin<Box<dyn Future<Output = Result<R, CallError>> + Send>>;

/// The future of a call: resolves to the method's return value or a [`CallError`].
///
/// It is lazy like every Rust future: its arguments are encoded when it is made (a call too
/// large for the frame limit fails with [`CallError::FrameTooLarge`] when polled, and nothing
/// is sent), but **nothing is sent and nothing runs before it is first polled**. Dropped before
/// its first poll, the call never happened. Calls awaited together (`join_all`,
/// `FuturesUnordered`, `buffer_unordered`) share one write. To fire a call and forget it, spawn
/// its future.
///
/// Dropping it after its first poll and before it resolves cancels the call: the callee drops
/// the handler.
///
/// # Deadlines
///
/// A call over a connection has a deadline unless its reference opts out: by default
/// [`Config::default_call_timeout`](crate::Config::default_call_timeout), **10 s**; per
/// reference, [`with_timeout`](crate::ObjectRef::with_timeout) sets another and
/// [`without_timeout`](crate::ObjectRef::without_timeout) none. Once the deadline has passed
/// since the first poll, the future resolves to [`CallError::Timeout`] of kind
/// [`TimeoutKind::Call`] (see [`CallError::timeout_kind`]) and the call is cancelled; the
/// deadline also travels with the call, so the callee drops the handler by itself. A peer that
/// stops answering thus holds a call for at most its deadline. Calls of local objects have a
/// deadline only when their reference sets one.
///
/// Poll it inside a tokio runtime.
///
/// # Application errors
///
/// A remote method returning `Result<V, E>` gives a `CallFuture<Result<V, E>>`, which
/// resolves to `Result<Result<V, E>, CallError>`: the outer layer says whether the call got
/// through, the inner one is the method's answer. `.await??` takes both in a function whose
/// error type converts from both; when `E` itself converts from [`CallError`],
/// [`flatten`](CallFuture::flatten) merges them into one `Result<V, E>`.
#[must_use = "a call is sent only when its future is first polled (awaited); dropped before that it never happens, dropped after that it is cancelled at the callee"]
pub struct CallFuture<R> {
    state: State<R>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    polled: bool,
}

enum State<R> {
    /// Failed before anything was sent; a call over a connection (the method named) is still
    /// counted, when first polled.
    Failed(Option<CallError>, Option<Cow<'static, str>>),
    Remote(PendingCall, PhantomData<fn() -> R>),
    /// A call of a local object, polled with no [`Peer::current`](crate::Peer::current)
    /// even when the caller is a handler of a peer's call.
    Local(WithCaller<LocalCall<R>>),
    Done,
}

impl<R> CallFuture<R> {
    fn new(state: State<R>, timeout: Option<Duration>) -> Self {
        CallFuture {
            state,
            timeout,
            deadline: None,
            polled: false,
        }
    }

    pub(crate) fn failed(e: CallError) -> Self {
        CallFuture::new(State::Failed(Some(e), None), None)
    }

    /// A call of `method` over a connection that failed before it was sent.
    pub(crate) fn failed_remote(e: CallError, method: Cow<'static, str>) -> Self {
        CallFuture::new(State::Failed(Some(e), Some(method)), None)
    }

    pub(crate) fn remote(pending: PendingCall, timeout: Option<Duration>) -> Self {
        CallFuture::new(State::Remote(pending, PhantomData), timeout)
    }

    pub(crate) fn local(call: LocalCall<R>, timeout: Option<Duration>) -> Self {
        CallFuture::new(State::Local(WithCaller::new(None, call)), timeout)
    }

    /// The first poll: the deadline's timer of a local call starts, and a call that failed
    /// before it was sent is counted. (A call over a connection starts in its own first poll:
    /// see [`PendingCall::poll_call`].)
    fn start(&mut self) {
        self.polled = true;
        match &mut self.state {
            State::Local(_) => {
                // A deadline too far away to be an `Instant` (`Duration::MAX`) is none.
                let deadline =
                    (self.timeout).and_then(|timeout| Instant::now().checked_add(timeout));
                self.deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
            }
            State::Failed(Some(e), Some(method)) => {
                let outcome = Outcome::of_error(e);
                record_call(Direction::Outgoing, method.clone(), outcome, Duration::ZERO);
            }
            _ => {}
        }
    }
}

impl<R: DeserializeOwned> Future for CallFuture<R> {
    type Output = Result<R, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is Unpin: the pending call is, the local future and the timer are boxed.
        let this = self.get_mut();
        // Its timeout, at the first poll of a call over a connection.
        let timeout = if this.polled {
            None
        } else {
            this.start();
            this.timeout
        };
        // When an answer's burst was read: the end of the call, without reading the clock.
        let mut arrived = None;
        let polled = match &mut this.state {
            State::Failed(e, _) => Poll::Ready(Err(e.take().unwrap_or_else(polled_after_done))),
            State::Remote(pending, _) => match pending.poll_call(cx, timeout) {
                Poll::Ready(answer) => Poll::Ready(answer.and_then(|reply| {
                    arrived = Some(reply.arrived);
                    pending.decode(reply)
                })),
                Poll::Pending => Poll::Pending,
            },
            State::Local(call) => Pin::new(call).poll(cx),
            State::Done => Poll::Ready(Err(polled_after_done())),
        };
        if let Poll::Ready(mut result) = polled {
            // The connection's timer failed the call (it does not know the timeout), or the
            // callee noticed the deadline first: to the caller it is the same timeout.
            if let (Some(after), Err(e)) = (this.timeout, &result)
                && (e.timeout_kind() == Some(TimeoutKind::Call)
                    || e.remote_kind() == Some(RemoteErrorKind::DeadlineExceeded))
            {
                result = Err(CallError::timeout(TimeoutKind::Call, after));
            }
            // A call over a connection is counted, and its span closed (at `arrived`, or now).
            if let State::Remote(pending, _) = &mut this.state {
                pending.finish_telemetry(Outcome::of_call(&result), arrived);
            }
            this.state = State::Done;
            return Poll::Ready(result);
        }
        if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            // Only a call of a local object has a timer of its own (uncounted).
            this.state = State::Done;
            let timeout = CallError::timeout(TimeoutKind::Call, this.timeout.unwrap_or_default());
            return Poll::Ready(Err(timeout));
        }
        Poll::Pending
    }
}

impl<V, E> CallFuture<Result<V, E>>
where
    Result<V, E>: DeserializeOwned,
    E: From<CallError>,
{
    /// The call with its two layers of errors merged: `Result<V, E>` instead of
    /// `Result<Result<V, E>, CallError>`, a [`CallError`] becoming an `E` through
    /// `From<CallError>`. For an application error type with a variant for "the call did not
    /// get through", which only the caller makes (`#[serde(skip)]`: it never travels, and
    /// `CallError` need not be serde):
    ///
    /// ```
    /// # use rpc_core::{remote, CallError, TimeoutKind};
    /// #[derive(Debug, serde::Serialize, serde::Deserialize)]
    /// pub enum BankError {
    ///     NoSuchAccount,
    ///     #[serde(skip)]
    ///     Call(CallError),
    /// }
    ///
    /// impl From<CallError> for BankError {
    ///     fn from(e: CallError) -> Self { BankError::Call(e) }
    /// }
    ///
    /// #[remote]
    /// pub trait Bank {
    ///     async fn remote_balance(&self, account: u64) -> Result<u64, BankError>;
    /// }
    ///
    /// async fn balance(bank: &BankRef, account: u64) -> Option<u64> {
    ///     match bank.balance(account).flatten().await { // not `.await??`
    ///         Ok(balance) => Some(balance),
    ///         Err(BankError::NoSuchAccount) => None,
    ///         Err(BankError::Call(e)) if e.timeout_kind() == Some(TimeoutKind::Call) => None,
    ///         Err(e) => panic!("{e:?}"),
    ///     }
    /// }
    /// ```
    ///
    /// Like the call, it is lazy and dropping it cancels the call. (Not to be confused with
    /// `futures::FutureExt::flatten`, for a future whose output is a future.)
    pub async fn flatten(self) -> Result<V, E> {
        self.await.unwrap_or_else(|e| Err(E::from(e)))
    }
}

fn polled_after_done() -> CallError {
    CallError::Protocol {
        message: "a CallFuture was polled after it completed".into(),
    }
}

impl<R> fmt::Debug for CallFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallFuture")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
