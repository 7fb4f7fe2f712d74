//! Objects and references: [`ObjectRef`], the untyped handle to an object that lives here or
//! across a connection; [`RemoteRef`], the trait of the typed `<Trait>Ref` proxies that
//! `#[remote]` generates; and [`Dispatch`], the server side of an object.
//!
//! A `Dispatch`, given a method name and the encoded arguments, decodes them, runs the trait
//! method and encodes its result. `#[remote]` writes the `Dispatch` of every trait; only
//! methods named `remote_*` get a dispatch arm, so no name a peer sends can reach anything
//! else.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::CallFuture;
use crate::codec;
use crate::connection::Shared;
use crate::error::{CallError, RemoteError, RemoteErrorKind};
use crate::peer::Peer;
use crate::protocol::WireRef;
use crate::refs::{decode_with, encode_in_process};
use crate::remote_object::RemoteObject;

/// The return value of a handler, encoded when the answer frame is built (so that
/// references in it are exported on the right connection). It is dropped only after its
/// frame is queued, so that a reference in it, sent back to its owner, is not released (by
/// the decref its drop sends) before the answer that carries it.
pub struct Answer(Box<dyn EncodeValue>);

/// A value that can encode itself: the erased return value of a handler.
trait EncodeValue: Send {
    fn encode(&self, buf: &mut BytesMut) -> Result<(), String>;
}

impl<T: Serialize + Send> EncodeValue for T {
    fn encode(&self, buf: &mut BytesMut) -> Result<(), String> {
        codec::encode_into(self, buf)
    }
}

impl Answer {
    pub(crate) fn write(&self, buf: &mut BytesMut) -> Result<(), String> {
        self.0.encode(buf)
    }
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Answer")
    }
}

/// What a dispatched call runs: resolves to the handler's answer.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Answer, RemoteError>> + Send>>;

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

/// Turns a handler's future into a [`HandlerFuture`] whose answer encodes its output.
pub fn respond<F, R>(fut: F) -> HandlerFuture
where
    F: Future<Output = R> + Send + 'static,
    R: Serialize + Send + 'static,
{
    Box::pin(async move { Ok(Answer(Box::new(fut.await))) })
}

/// Deserializes a typed reference, refusing a reference to an object of another trait.
pub fn deserialize_ref<'de, R, D>(deserializer: D) -> Result<R, D::Error>
where
    R: RemoteRef,
    D: serde::Deserializer<'de>,
{
    let object = <ObjectRef as serde::Deserialize<'de>>::deserialize(deserializer)?;
    match object.interface() {
        Some(found) if found != R::INTERFACE => Err(serde::de::Error::custom(format!(
            "expected a reference to a `{}`, got one to a `{found}`",
            R::INTERFACE
        ))),
        _ => Ok(R::from_object(object)),
    }
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

fn panicked(interface: &str, method: &str) -> RemoteError {
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
    AssertUnwindSafe(handler).catch_unwind().map(move |r| {
        r.unwrap_or_else(|_| {
            tracing::warn!(interface, method, "a remote method handler panicked");
            Err(panicked(interface, &method))
        })
    })
}

/// An untyped reference to an object: a local one, called directly, or one exported by the
/// peer of a connection, called over it. Cheap to clone; clones refer to the same object.
///
/// Typed proxies (`<Trait>Ref`) wrap one; [`ObjectRef::call_remote`] is the dynamic way to
/// call, like PB's `callRemote("name", ...)`. An `ObjectRef` is itself serde: as an argument
/// or return value of a remote call it travels by reference (see [`crate::protocol`]).
#[derive(Clone)]
pub struct ObjectRef {
    target: Target,
    timeout: Option<Duration>,
}

#[derive(Clone)]
enum Target {
    Local(Arc<dyn Dispatch>),
    Remote(Arc<RemoteObject>),
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Local(d) => write!(f, "ObjectRef(local {})", d.interface()),
            Target::Remote(r) => write!(f, "ObjectRef({r:?})"),
        }
    }
}

impl ObjectRef {
    /// A reference to a local object. Used by the generated `<Trait>Ref::new`.
    #[doc(hidden)]
    pub fn from_dispatch(dispatch: Arc<dyn Dispatch>) -> ObjectRef {
        ObjectRef {
            target: Target::Local(dispatch),
            timeout: None,
        }
    }

    pub(crate) fn remote(remote: Arc<RemoteObject>) -> ObjectRef {
        ObjectRef {
            target: Target::Remote(remote),
            timeout: None,
        }
    }

    /// `true` when the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Target::Local(_))
    }

    /// The name of the object's remote trait, when known: always for a local object and for
    /// one received as an argument or result; not for a root object obtained with
    /// [`Client::root`](crate::Client::root).
    pub fn interface(&self) -> Option<&str> {
        match &self.target {
            Target::Local(d) => Some(d.interface()),
            Target::Remote(r) => r.interface(),
        }
    }

    /// `true` when both refer to the same object: the same local object, or the same object
    /// of the same connection.
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        match (&self.target, &other.target) {
            (Target::Local(a), Target::Local(b)) => {
                std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
            }
            (Target::Remote(a), Target::Remote(b)) => a.same_object(b),
            _ => false,
        }
    }

    /// The connection behind a remote object (`None` for a local one): wait for or be told of
    /// its loss, inspect it.
    pub fn peer(&self) -> Option<Peer> {
        match &self.target {
            Target::Local(_) => None,
            Target::Remote(r) => Some(r.peer()),
        }
    }

    /// The same reference with a deadline for each call made through it: the caller gets
    /// [`CallError::Timeout`] when it passes, and the callee is told to stop the work.
    /// Overrides [`Config::default_call_timeout`](crate::Config::default_call_timeout).
    pub fn with_timeout(&self, timeout: Duration) -> ObjectRef {
        ObjectRef {
            target: self.target.clone(),
            timeout: Some(timeout),
        }
    }

    pub(crate) fn local_dispatch(&self) -> Option<&Arc<dyn Dispatch>> {
        match &self.target {
            Target::Local(d) => Some(d),
            Target::Remote(_) => None,
        }
    }

    /// How this reference is written for the connection `shared`.
    pub(crate) fn to_wire(&self, shared: &Arc<Shared>) -> Result<WireRef, String> {
        match &self.target {
            Target::Local(d) => shared.export(d).map(|id| WireRef::SenderExports {
                id,
                interface: d.interface().to_owned(),
            }),
            Target::Remote(r) => r.to_wire(shared),
        }
    }

    /// The typed handle of a local object for direct calls (see [`Dispatch::direct`]).
    #[doc(hidden)]
    pub fn local_direct(&self) -> Option<&dyn Any> {
        self.local_dispatch().and_then(|d| d.direct())
    }

    /// A call of a local object that runs `fut` directly (with this reference's timeout);
    /// a panic in it becomes a `Panicked` error. Used by the generated proxies.
    #[doc(hidden)]
    pub fn call_direct<F, R>(&self, method: &'static str, fut: F) -> CallFuture<R>
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let interface = self.local_dispatch().map_or("object", |d| d.interface());
        let call = AssertUnwindSafe(fut)
            .catch_unwind()
            .map(move |r| r.map_err(|_| CallError::from(panicked(interface, method))));
        CallFuture::local(Box::pin(call), self.timeout)
    }

    /// Calls `method` (the name without `remote_`) with the argument tuple `args`
    /// (`()`, `(a,)`, `(a, b)`, ...) and decodes the answer as `R`.
    ///
    /// The arguments are encoded before this returns, so a call too large for the frame limit
    /// fails with [`CallError::FrameTooLarge`] and nothing is sent. The call is sent at the
    /// latest when the future is first polled. Dropping the future before it completes
    /// cancels the call at the callee.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        match &self.target {
            Target::Remote(remote) => remote.call(method, &args, self.timeout),
            Target::Local(dispatch) => {
                call_in_process(Arc::clone(dispatch), method, &args, self.timeout)
            }
        }
    }
}

/// An untyped call of a local object: arguments and answer are encoded as if they crossed a
/// connection (references travel in a side table), so the object sees exactly what a remote
/// caller would send.
fn call_in_process<A, R>(
    dispatch: Arc<dyn Dispatch>,
    method: &str,
    args: &A,
    timeout: Option<Duration>,
) -> CallFuture<R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    let (encoded, refs) = encode_in_process(|| codec::encode(args));
    let encoded = match encoded {
        Ok(bytes) => bytes,
        Err(message) => {
            return CallFuture::failed(CallError::Encode {
                what: "arguments",
                message,
            });
        }
    };
    let limit = codec::MAX_FRAME_LENGTH_CEILING;
    let started = decode_with(refs, || {
        run_dispatch(dispatch.as_ref(), method, Args::new(&encoded, limit))
    });
    let started =
        started.map(|handler| guard_handler(dispatch.interface(), method.to_owned(), handler));
    let call = async move {
        let answer = started?.await?;
        let mut buf = BytesMut::new();
        let (written, refs) = encode_in_process(|| answer.write(&mut buf));
        written.map_err(|message| CallError::Encode {
            what: "answer",
            message,
        })?;
        decode_with(refs, || codec::decode(&buf, limit))
            .map_err(|message| CallError::Decode { message })
    };
    CallFuture::local(Box::pin(call), timeout)
}

/// A typed reference, generated by `#[remote]` as `<Trait>Ref`.
pub trait RemoteRef: Clone + Send + Sync + 'static {
    /// The remote trait's name.
    const INTERFACE: &'static str;

    /// Wraps an untyped reference.
    fn from_object(object: ObjectRef) -> Self;

    /// The untyped reference inside.
    fn object(&self) -> &ObjectRef;

    /// The same reference with a deadline for each call made through it; see
    /// [`ObjectRef::with_timeout`].
    fn with_timeout(&self, timeout: Duration) -> Self {
        Self::from_object(self.object().with_timeout(timeout))
    }

    /// The connection behind the object, `None` when it is local; see [`ObjectRef::peer`].
    fn peer(&self) -> Option<Peer> {
        self.object().peer()
    }

    /// `true` when the object lives in this process.
    fn is_local(&self) -> bool {
        self.object().is_local()
    }

    /// `true` when both refer to the same object.
    fn same_object(&self, other: &Self) -> bool {
        self.object().same_object(other.object())
    }
}
