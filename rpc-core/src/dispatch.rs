//! The server side of an object: [`Dispatch`] routes a method name and encoded arguments to
//! the code, and the helpers that run what it starts.
//!
//! A `Dispatch`, given a method name and the encoded arguments, decodes them, starts the trait
//! method and hands back its future, whose [`Answer`] encodes the result when the answer frame
//! is built. `#[remote]` writes the `Dispatch` of every trait; only methods named `remote_*`
//! get a dispatch arm, so no name a peer sends can reach anything else. A panic while starting
//! or running a handler becomes a `Panicked` error ([`run_dispatch`], [`guard_handler`]).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::FutureExt;
use futures::future::MaybeDone;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{RemoteError, RemoteErrorKind};

/// The return value of a handler, encoded when the answer frame is built (so that
/// references in it are exported on the right connection). It is dropped only after its
/// frame is queued, so that a reference in it, sent back to its owner, is not released (by
/// the decref its drop sends) before the answer that carries it. It stays where the handler's
/// future was: one allocation per call holds both.
pub struct Answer(Pin<Box<dyn Respond>>);

/// A handler's future, then the value it resolved to: the erased state of a handler.
trait Respond: Send {
    /// Polls the future; `Ready` once the value is there.
    fn poll_value(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Appends the encoded value to `buf` (once there).
    fn encode(&self, buf: &mut BytesMut) -> Result<(), String>;
    /// The same, giving up once `buf` would hold more than `max_len` bytes (see
    /// [`codec::encode_within`]).
    fn encode_within(&self, buf: &mut BytesMut, max_len: usize) -> Result<(), Option<String>>;
}

const NO_VALUE: &str = "the handler has no value to encode";

impl<F> Respond for MaybeDone<F>
where
    F: Future + Send,
    F::Output: Serialize + Send,
{
    fn poll_value(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Future::poll(self, cx)
    }

    fn encode(&self, buf: &mut BytesMut) -> Result<(), String> {
        match self {
            MaybeDone::Done(value) => codec::encode_into(value, buf),
            _ => Err(NO_VALUE.into()),
        }
    }

    fn encode_within(&self, buf: &mut BytesMut, max_len: usize) -> Result<(), Option<String>> {
        match self {
            MaybeDone::Done(value) => codec::encode_within(value, buf, max_len),
            _ => Err(Some(NO_VALUE.into())),
        }
    }
}

impl Answer {
    /// Appends the encoded value to `buf`.
    pub(crate) fn write(&self, buf: &mut BytesMut) -> Result<(), String> {
        self.0.encode(buf)
    }

    /// Appends the encoded value to `buf` if that leaves `buf` no longer than `max_len` bytes;
    /// `false` otherwise, or if it does not encode (`buf` then holds part of it).
    pub(crate) fn write_within(&self, buf: &mut BytesMut, max_len: usize) -> bool {
        self.0.encode_within(buf, max_len).is_ok()
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Answer")
    }
}

/// What a dispatched call runs: resolves to the handler's answer. Made by [`respond`].
pub struct HandlerFuture(Option<Pin<Box<dyn Respond>>>);

impl Future for HandlerFuture {
    type Output = Result<Answer, RemoteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let handler = self.0.as_mut().expect("a handler polled after it finished");
        std::task::ready!(handler.as_mut().poll_value(cx));
        Poll::Ready(Ok(Answer(self.0.take().expect("just polled"))))
    }
}

impl fmt::Debug for HandlerFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFuture")
    }
}

/// The server side of an object: routes a method name and encoded arguments to the code.
///
/// Implemented by `#[remote]`; implement it by hand only for dynamic objects.
pub trait Dispatch: Send + Sync + 'static {
    /// The name of the remote trait (for messages and logs).
    fn interface(&self) -> &'static str;

    /// Starts the call of `method`. Returns an error at once for an unknown method or
    /// arguments that do not decode.
    fn dispatch(&self, method: &str, args: Args<'_>) -> Result<HandlerFuture, RemoteError>;

    /// The typed handle that lets a `<Trait>Ref` call this local object directly, without
    /// encoding anything.
    fn direct(&self) -> Option<&dyn Any> {
        None
    }

    /// `method`, as the `&'static str` this object knows it by, if it has such a method: what
    /// a running call is named by in errors and logs without copying its name from every
    /// frame. `#[remote]` writes it; by default (`None`) the name is copied.
    fn method_name(&self, method: &str) -> Option<&'static str> {
        let _ = method;
        None
    }
}

/// The encoded argument tuple of an incoming call.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    bytes: &'a [u8],
    limit: usize,
    max_depth: usize,
}

impl<'a> Args<'a> {
    pub(crate) fn new(bytes: &'a [u8], limit: usize, max_depth: usize) -> Self {
        Args {
            bytes,
            limit,
            max_depth,
        }
    }

    /// Decodes the argument tuple of `method`; a mismatch is a `BadArguments` error.
    pub fn decode<A: DeserializeOwned>(&self, method: &str) -> Result<A, RemoteError> {
        codec::decode(self.bytes, self.limit, self.max_depth).map_err(|e| {
            RemoteError::new(
                RemoteErrorKind::BadArguments,
                format!(
                    "the arguments of `{method}` do not decode as its parameter types ({e}); \
                     do both sides use the same version of the remote trait?"
                ),
            )
        })
    }
}

/// Turns a handler's future into a [`HandlerFuture`] whose answer encodes its output.
pub fn respond<F, R>(fut: F) -> HandlerFuture
where
    F: Future<Output = R> + Send + 'static,
    R: Serialize + Send + 'static,
{
    HandlerFuture(Some(Box::pin(MaybeDone::Future(fut))))
}

/// The error for a method name an object does not expose remotely.
pub fn no_such_method(interface: &'static str, method: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::NoSuchMethod,
        format!(
            "`{interface}` has no remote method `{method}` (callable names are the trait's \
             `remote_*` methods without the prefix)"
        ),
    )
}

/// The error of a handler (or of the encoding of its answer) that panicked.
pub(crate) fn panicked(interface: &str, method: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Panicked,
        format!("the handler of `{interface}.{method}` panicked"),
    )
}

/// Starts a dispatched call; a panic while starting it (in the decoding of its arguments,
/// say) becomes a `Panicked` error.
pub(crate) fn run_dispatch(
    target: &dyn Dispatch,
    method: &str,
    args: Args<'_>,
) -> Result<HandlerFuture, RemoteError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| target.dispatch(method, args))) {
        Ok(started) => started,
        Err(_) => Err(panicked(target.interface(), method)),
    }
}

/// Runs a started handler, turning a panic in it into a `Panicked` error.
pub(crate) fn guard_handler(
    interface: &'static str,
    method: String,
    handler: HandlerFuture,
) -> impl Future<Output = Result<Answer, RemoteError>> + Send + 'static {
    AssertUnwindSafe(handler)
        .catch_unwind()
        .map(move |r| settle(r, interface, &method))
}

/// A caught handler's result, with a panic turned into a `Panicked` error (and logged).
pub(crate) fn settle(
    result: std::thread::Result<Result<Answer, RemoteError>>,
    interface: &'static str,
    method: &str,
) -> Result<Answer, RemoteError> {
    result.unwrap_or_else(|_| {
        tracing::warn!(interface, method, "a remote method handler panicked");
        Err(panicked(interface, method))
    })
}
