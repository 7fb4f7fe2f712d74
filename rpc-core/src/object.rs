//! Objects and references: [`ObjectRef`], the untyped handle to an object that lives here or
//! across a connection, [`RemoteRef`], the trait of the typed `<Trait>Ref` proxies that
//! `#[remote]` generates, and [`CallFuture`], what every call returns.
//!
//! The server side of an object is a [`Dispatch`]: given a method name and the encoded
//! arguments, it decodes them, runs the trait method and encodes its result. `#[remote]`
//! writes the `Dispatch` of every trait; only methods named `remote_*` get a dispatch arm, so
//! no name a peer sends can reach anything else.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::connection::{Connection, PendingCall};
use crate::error::{CallError, RemoteError, RemoteErrorKind};

/// What a dispatched call runs: resolves to the encoded return value.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Bytes, RemoteError>> + Send>>;

/// The server side of an object: routes a method name and encoded arguments to the code.
///
/// Implemented by `#[remote]`; implement it by hand only for dynamic objects.
pub trait Dispatch: Send + Sync + 'static {
    /// The name of the remote trait (for messages and logs).
    fn interface(&self) -> &'static str;

    /// Starts the call of `method`. Returns an error at once for an unknown method or
    /// arguments that do not decode.
    fn dispatch(&self, method: &str, args: Args<'_>) -> Result<HandlerFuture, RemoteError>;
}

/// The encoded argument tuple of an incoming call.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    bytes: &'a [u8],
    limit: usize,
}

impl<'a> Args<'a> {
    pub(crate) fn new(bytes: &'a [u8], limit: usize) -> Self {
        Args { bytes, limit }
    }

    /// Decodes the argument tuple of `method`; a mismatch is a `BadArguments` error.
    pub fn decode<A: DeserializeOwned>(&self, method: &str) -> Result<A, RemoteError> {
        codec::decode(self.bytes, self.limit).map_err(|e| {
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

/// Turns a handler's future into a [`HandlerFuture`] that encodes its output.
pub fn respond<F, R>(fut: F) -> HandlerFuture
where
    F: Future<Output = R> + Send + 'static,
    R: Serialize + 'static,
{
    Box::pin(async move {
        let value = fut.await;
        codec::encode(&value).map_err(|e| {
            RemoteError::new(
                RemoteErrorKind::BadAnswer,
                format!("the handler's return value could not be encoded: {e}"),
            )
        })
    })
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

/// Runs a dispatched call to completion, turning a panic in the handler (or in the decoding
/// of its arguments) into a `Panicked` error.
pub(crate) fn run_dispatch(
    target: &dyn Dispatch,
    method: &str,
    args: Args<'_>,
) -> Result<HandlerFuture, RemoteError> {
    let interface = target.interface();
    let panicked = move |method: &str| {
        RemoteError::new(
            RemoteErrorKind::Panicked,
            format!("the handler of `{interface}.{method}` panicked"),
        )
    };
    let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| target.dispatch(method, args))) {
        Ok(r) => r?,
        Err(_) => return Err(panicked(method)),
    };
    let method = method.to_owned();
    Ok(Box::pin(AssertUnwindSafe(fut).catch_unwind().map(
        move |r| match r {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(interface, method, "a remote method handler panicked");
                Err(panicked(&method))
            }
        },
    )))
}

/// An untyped reference to an object: a local one, called directly, or one exported by the
/// peer of a connection, called over it. Cheap to clone.
///
/// Typed proxies (`<Trait>Ref`) wrap one; [`ObjectRef::call_remote`] is the dynamic way to
/// call, like PB's `callRemote("name", ...)`.
#[derive(Clone)]
pub struct ObjectRef {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Local(Arc<dyn Dispatch>),
    Remote { connection: Connection, id: u64 },
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Local(d) => write!(f, "ObjectRef(local {})", d.interface()),
            Target::Remote { connection, id } => {
                write!(f, "ObjectRef(object {id} of {})", connection.peer())
            }
        }
    }
}

impl ObjectRef {
    /// A reference to a local object. Used by the generated `<Trait>Ref::new`.
    #[doc(hidden)]
    pub fn from_dispatch(dispatch: Arc<dyn Dispatch>) -> ObjectRef {
        ObjectRef {
            target: Target::Local(dispatch),
        }
    }

    pub(crate) fn remote(connection: Connection, id: u64) -> ObjectRef {
        ObjectRef {
            target: Target::Remote { connection, id },
        }
    }

    /// `true` when the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Target::Local(_))
    }

    /// The local object's dispatcher, or, for a remote object, one that forwards every call to
    /// it (so a remote object can be re-exported, e.g. as a listener's root).
    pub(crate) fn to_dispatch(&self) -> Arc<dyn Dispatch> {
        match &self.target {
            Target::Local(d) => Arc::clone(d),
            Target::Remote { .. } => Arc::new(Forward(self.clone())),
        }
    }

    /// Calls `method` (the name without `remote_`) with the argument tuple `args`
    /// (`()`, `(a,)`, `(a, b)`, ...) and decodes the answer as `R`.
    ///
    /// The arguments are encoded before this returns, so a call too large for the frame limit
    /// fails with [`CallError::FrameTooLarge`] and nothing is sent. Dropping the future before
    /// it completes cancels the call at the callee.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        match &self.target {
            Target::Remote { connection, id } => match connection.start_call(*id, method, |buf| {
                codec::encode_into(&args, buf).map_err(|message| CallError::Encode {
                    what: "arguments",
                    message,
                })
            }) {
                Ok(pending) => CallFuture {
                    state: CallState::Remote(pending),
                },
                Err(e) => CallFuture::failed(e),
            },
            Target::Local(dispatch) => {
                let args = match codec::encode(&args) {
                    Ok(a) => a,
                    Err(e) => {
                        return CallFuture::failed(CallError::Encode {
                            what: "arguments",
                            message: e,
                        });
                    }
                };
                let fut = run_dispatch(
                    dispatch.as_ref(),
                    method,
                    Args::new(&args, codec::MAX_FRAME_LENGTH_CEILING),
                );
                CallFuture {
                    state: CallState::Local(Box::pin(async move {
                        let bytes = fut?.await?;
                        decode_answer(&bytes, codec::MAX_FRAME_LENGTH_CEILING)
                    })),
                }
            }
        }
    }

    /// Calls with already encoded arguments, answering with the encoded result.
    fn call_encoded(&self, method: &str, args: &[u8]) -> HandlerFuture {
        match &self.target {
            Target::Remote { connection, id } => {
                let started = connection.start_call(*id, method, |buf| {
                    buf.extend_from_slice(args);
                    Ok(())
                });
                match started {
                    Ok(pending) => Box::pin(async move {
                        pending.await.map_err(|e| match e {
                            CallError::Remote { kind, message } => RemoteError::new(kind, message),
                            other => {
                                RemoteError::new(RemoteErrorKind::BadAnswer, other.to_string())
                            }
                        })
                    }),
                    Err(e) => {
                        let e = RemoteError::new(RemoteErrorKind::BadAnswer, e.to_string());
                        Box::pin(async move { Err(e) })
                    }
                }
            }
            Target::Local(d) => {
                match run_dispatch(d.as_ref(), method, Args::new(args, usize::MAX)) {
                    Ok(f) => f,
                    Err(e) => Box::pin(async move { Err(e) }),
                }
            }
        }
    }
}

/// Forwards calls to a remote object: the dispatcher of a re-exported proxy.
struct Forward(ObjectRef);

impl Dispatch for Forward {
    fn interface(&self) -> &'static str {
        "forwarded object"
    }

    fn dispatch(&self, method: &str, args: Args<'_>) -> Result<HandlerFuture, RemoteError> {
        Ok(self.0.call_encoded(method, args.bytes))
    }
}

fn decode_answer<R: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<R, CallError> {
    codec::decode(bytes, limit).map_err(|message| CallError::Decode { message })
}

/// A typed reference, generated by `#[remote]` as `<Trait>Ref`.
pub trait RemoteRef: Clone + Send + Sync + 'static {
    /// The remote trait's name.
    const INTERFACE: &'static str;
    /// Wraps an untyped reference.
    fn from_object(object: ObjectRef) -> Self;
    /// The untyped reference inside.
    fn object(&self) -> &ObjectRef;
}

/// The future of a call: resolves to the method's return value or a [`CallError`].
///
/// Dropping it before it resolves cancels the call: the callee drops the handler.
#[must_use = "a call does nothing useful unless awaited; dropping it cancels it"]
pub struct CallFuture<R> {
    state: CallState<R>,
}

enum CallState<R> {
    Failed(Option<CallError>),
    Remote(PendingCall),
    Local(Pin<Box<dyn Future<Output = Result<R, CallError>> + Send>>),
}

impl<R> CallFuture<R> {
    fn failed(e: CallError) -> Self {
        CallFuture {
            state: CallState::Failed(Some(e)),
        }
    }
}

impl<R: DeserializeOwned> Future for CallFuture<R> {
    type Output = Result<R, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // CallState is Unpin: PendingCall is, and the local future is boxed.
        match &mut self.get_mut().state {
            CallState::Failed(e) => {
                Poll::Ready(Err(e.take().expect("CallFuture polled after it completed")))
            }
            CallState::Remote(pending) => {
                let limit = pending.decode_limit();
                Pin::new(pending)
                    .poll(cx)
                    .map(|r| r.and_then(|bytes| decode_answer(&bytes, limit)))
            }
            CallState::Local(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl<R> fmt::Debug for CallFuture<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallFuture")
    }
}
