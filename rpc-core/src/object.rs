//! Objects and references: [`ObjectRef`], the untyped handle to an object that lives here or
//! across a connection, and [`RemoteRef`], the trait of the typed `<Trait>Ref` proxies that
//! `#[remote]` generates. The server side of an object is a [`Dispatch`].
//!
//! An `ObjectRef` is serde: as an argument or return value of a remote call it travels by
//! reference (the connection layer's reference context writes it, see [`crate::protocol`]).
//! When an exported object is released and its `Drop` runs is told on [`RemoteRef`], the
//! public face of this module.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::call::CallFuture;
use crate::codec;
use crate::conn::pending_call::PendingCall;
use crate::conn::refctx::{
    decode_with, deserialize_reference, encode_in_process, serialize_reference,
};
use crate::conn::{Reference, RemoteObject};
use crate::dispatch::{Args, Dispatch, guard_handler, panicked, run_dispatch};
use crate::error::CallError;
use crate::peer::Peer;

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

/// `object` as an `A`, if its interface is `A`'s (or unknown); `what` names the object in
/// the error ("the avatar", "the object the URL names").
pub(crate) fn typed<A: RemoteRef>(object: ObjectRef, what: &str) -> Result<A, CallError> {
    match object.interface() {
        Some(found) if found != A::INTERFACE => Err(CallError::Decode {
            message: format!("{what} is a `{found}`, not a `{}`", A::INTERFACE),
        }),
        _ => Ok(A::from_object(object)),
    }
}

/// An untyped reference to an object: a local one, called directly, or one exported by the
/// peer of a connection, called over it. Cheap to clone; clones refer to the same object.
///
/// Typed proxies (`<Trait>Ref`) wrap one; [`ObjectRef::call_remote`] is the dynamic way to
/// call, like PB's `callRemote("name", ...)`. An `ObjectRef` is itself serde: as an argument
/// or return value of a remote call it travels by reference (see [`crate::protocol`]). When
/// an object exported to a peer is dropped, and on which thread: see
/// [`RemoteRef`](RemoteRef#when-an-exported-object-is-dropped).
#[derive(Clone)]
pub struct ObjectRef {
    target: Reference,
    deadline: Deadline,
}

/// The deadline of the calls made through one [`ObjectRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// The connection's [`Config::default_call_timeout`](crate::Config::default_call_timeout).
    Default,
    /// This long after the call's first poll.
    After(Duration),
    /// None at all.
    Never,
}

impl fmt::Debug for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Reference::Local(d) => write!(f, "ObjectRef(local {})", d.interface()),
            Reference::Remote(r) => write!(f, "ObjectRef({r:?})"),
        }
    }
}

impl ObjectRef {
    /// A reference to a local object. Used by the generated `<Trait>Ref::new`.
    #[doc(hidden)]
    pub fn from_dispatch(dispatch: Arc<dyn Dispatch>) -> ObjectRef {
        ObjectRef::from_reference(Reference::Local(dispatch))
    }

    pub(crate) fn remote(remote: Arc<RemoteObject>) -> ObjectRef {
        ObjectRef::from_reference(Reference::Remote(remote))
    }

    fn from_reference(target: Reference) -> ObjectRef {
        ObjectRef {
            target,
            deadline: Deadline::Default,
        }
    }

    /// `true` when the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.target, Reference::Local(_))
    }

    /// The name of the object's remote trait, when known: always for a local object and for
    /// one received as an argument or result; not for a root object obtained with
    /// [`Client::root`](crate::Client::root).
    pub fn interface(&self) -> Option<&str> {
        match &self.target {
            Reference::Local(d) => Some(d.interface()),
            Reference::Remote(r) => r.interface(),
        }
    }

    /// `true` when both refer to the same object: the same local object, or the same object
    /// of the same connection.
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        match (&self.target, &other.target) {
            (Reference::Local(a), Reference::Local(b)) => {
                std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
            }
            (Reference::Remote(a), Reference::Remote(b)) => a.same_object(b),
            _ => false,
        }
    }

    /// The connection behind a remote object (`None` for a local one): wait for or be told of
    /// its loss, inspect it.
    pub fn peer(&self) -> Option<Peer> {
        match &self.target {
            Reference::Local(_) => None,
            Reference::Remote(r) => Some(Peer::new(Arc::clone(r.connection().shared()))),
        }
    }

    /// The same reference with a deadline for each call made through it: `timeout` after a
    /// call is first polled, the caller gets [`CallError::Timeout`] (of kind
    /// [`TimeoutKind::Call`](crate::TimeoutKind::Call)) and the callee drops the handler.
    /// Overrides [`Config::default_call_timeout`](crate::Config::default_call_timeout) (10 s
    /// unless changed). `self` keeps its own deadline.
    pub fn with_timeout(&self, timeout: Duration) -> ObjectRef {
        self.with_deadline(Deadline::After(timeout))
    }

    /// The same reference with no deadline at all on calls made through it, not even
    /// [`Config::default_call_timeout`](crate::Config::default_call_timeout): for calls that
    /// legitimately run long (a long computation, a long poll). Such a call ends when it is
    /// answered, when its future is dropped, or when the connection is lost (keepalive
    /// notices a peer that stops answering). `self` keeps its own deadline.
    pub fn without_timeout(&self) -> ObjectRef {
        self.with_deadline(Deadline::Never)
    }

    fn with_deadline(&self, deadline: Deadline) -> ObjectRef {
        ObjectRef {
            target: self.target.clone(),
            deadline,
        }
    }

    /// The deadline of a call through this reference, `default` standing for the
    /// connection's default.
    fn timeout(&self, default: Option<Duration>) -> Option<Duration> {
        match self.deadline {
            Deadline::Default => default,
            Deadline::After(timeout) => Some(timeout),
            Deadline::Never => None,
        }
    }

    /// The connection the object lives across, `None` for a local object.
    pub(crate) fn connection(&self) -> Option<&crate::conn::Connection> {
        match &self.target {
            Reference::Local(_) => None,
            Reference::Remote(r) => Some(r.connection()),
        }
    }

    pub(crate) fn local_dispatch(&self) -> Option<&Arc<dyn Dispatch>> {
        match &self.target {
            Reference::Local(d) => Some(d),
            Reference::Remote(_) => None,
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
        CallFuture::local(Box::pin(call), self.timeout(None))
    }

    /// Calls `method` (the name without `remote_`) with the argument tuple `args`
    /// (`()`, `(a,)`, `(a, b)`, ...) and decodes the answer as `R`.
    ///
    /// The arguments are encoded before this returns, so a call too large for the frame limit
    /// resolves to [`CallError::FrameTooLarge`] and nothing is sent. Like every future the call
    /// is lazy: it is sent when the future is first polled, and dropped before that it never
    /// happens. Dropped after its first poll and before it completes, it is cancelled at the
    /// callee.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.call(MethodName::Borrowed(method), args)
    }

    /// [`call_remote`](ObjectRef::call_remote) with a name that lives for ever, which the
    /// call's metrics label need not copy. Used by the generated proxies.
    #[doc(hidden)]
    pub fn call_static<A, R>(&self, method: &'static str, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.call(MethodName::Static(method), args)
    }

    fn call<A, R>(&self, method: MethodName<'_>, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        match &self.target {
            Reference::Remote(remote) => {
                let default = remote.connection().shared().config().default_call_timeout;
                let method = match method {
                    MethodName::Static(name) => Cow::Borrowed(name),
                    MethodName::Borrowed(name) => Cow::Owned(name.to_owned()),
                };
                call_over_connection(remote, method, &args, self.timeout(default))
            }
            Reference::Local(dispatch) => {
                let method = match method {
                    MethodName::Static(name) | MethodName::Borrowed(name) => name,
                };
                call_in_process(Arc::clone(dispatch), method, &args, self.timeout(None))
            }
        }
    }
}

/// A method's name as a call is given it.
enum MethodName<'a> {
    Static(&'static str),
    Borrowed(&'a str),
}

/// A call of the peer's object `remote`, over its connection.
fn call_over_connection<A, R>(
    remote: &RemoteObject,
    method: Cow<'static, str>,
    args: &A,
    timeout: Option<Duration>,
) -> CallFuture<R>
where
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    let started = PendingCall::start(remote.connection(), remote.id(), method, timeout, |buf| {
        codec::encode_into(args, buf)
    });
    match started {
        Ok(pending) => CallFuture::remote(pending, timeout),
        Err((e, method)) => CallFuture::failed_remote(e, method),
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
    let depth = codec::DEFAULT_MAX_DECODE_DEPTH;
    let started = decode_with(refs, || {
        run_dispatch(dispatch.as_ref(), method, Args::new(&encoded, limit, depth))
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
        decode_with(refs, || codec::decode(&buf, limit, depth))
            .map_err(|message| CallError::Decode { message })
    };
    CallFuture::local(Box::pin(call), timeout)
}

impl Serialize for ObjectRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_reference(&self.target, serializer)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_reference(deserializer).map(ObjectRef::from_reference)
    }
}

/// A typed reference, generated by `#[remote]` as `<Trait>Ref`.
///
/// # When an exported object is dropped
///
/// The object behind `<Trait>Ref::new(obj)` is dropped (its `Drop` runs) once nothing holds
/// it any more. For an object handed to a peer, that makes `Drop` the natural "this member
/// left" hook (a chat room's member, a logged-in user's session, a worker's place at a
/// broker), because it runs whichever way the peer lets go:
///
/// - the peer **drops its last proxy** of the object: the peer sends a decref, and the object
///   is released when it arrives (a reference re-sent meanwhile is counted, so an object is
///   never released early);
/// - the **connection is lost or closed**: the peer's process died, the network failed, the
///   keepalive gave up, or either side closed it. Every object exported on that connection is
///   released at once (a connection's root, as the connection's reader task ends, just after).
///
/// `Drop` runs once, when the *last* holder lets go, which may be after either event:
///
/// - a call to the object that is still running holds it until its handler ends (on a lost
///   connection the handlers are cancelled first, so this is soon);
/// - every other `<Trait>Ref` of the object holds it: clones this program keeps (keep a
///   member's name or id in a member list, not its `<Trait>Ref`, or `Drop` never runs), and
///   the same object exported on other connections;
/// - a server's root object and objects registered under a [`SturdyUrl`](crate::SturdyUrl)
///   are held by the server: they are dropped when the server and its connections are gone.
///
/// **On which thread.** `Drop` runs synchronously on the thread that releases the last hold:
/// usually a tokio worker thread running the connection's reader (the decref or the
/// disconnection arrived there) or the task of the last handler; but when this side closes
/// the connection itself ([`Client::close`](crate::Client::close), [`Peer::close`], dropping
/// every handle to the connection), on the thread that does so, which need not be inside a
/// tokio runtime (a program using `rpc_core::blocking`, say). So keep `Drop` short
/// and never block in it: it holds up that connection's reader. To do async work when a member
/// leaves (telling the others), send on a channel that never blocks
/// (`tokio::sync::mpsc::UnboundedSender::send`) to a task that does it, or spawn only if
/// `tokio::runtime::Handle::try_current()` finds a runtime. A panic in `Drop` on a
/// connection's task closes that connection, nothing more.
///
/// To hear that a connection is lost without exporting an object, see
/// [`Peer::on_disconnect`].
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

    /// The same reference without any deadline on its calls, not even the connection's
    /// default; see [`ObjectRef::without_timeout`].
    fn without_timeout(&self) -> Self {
        Self::from_object(self.object().without_timeout())
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
