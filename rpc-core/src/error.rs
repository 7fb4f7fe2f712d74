//! Errors: [`CallError`], the one error type of rpc-core, and the error a handler's side sends
//! back over the wire ([`RemoteErrorKind`] + message).
//!
//! Every fallible operation in rpc-core returns `Result<_, CallError>`: binding, connecting,
//! and above all calling. A remote error never carries a traceback or internal detail of the
//! peer: only a kind and a short message written for the caller.

use std::fmt;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything that can go wrong when binding, connecting or calling a remote method.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer received the call but could not or would not run it.
    #[error("remote error ({kind}): {message}")]
    Remote {
        /// What kind of failure the peer reported.
        kind: RemoteErrorKind,
        /// The peer's explanation, meant for a person.
        message: String,
    },
    /// The connection is gone (or was never usable); the call may or may not have run.
    #[error("disconnected: {reason}; connect again to make further calls")]
    Disconnected {
        /// Why the connection ended, as seen from this side.
        reason: String,
    },
    /// A frame would exceed the maximum frame length; nothing was sent.
    #[error(
        "the encoded {what} is {size} bytes, over the {limit}-byte frame limit; \
         send less per call or raise `max_frame_length` on both ends"
    )]
    FrameTooLarge {
        /// What was too large ("call", "answer").
        what: &'static str,
        /// Its encoded size in bytes.
        size: usize,
        /// The configured maximum frame length in bytes.
        limit: usize,
    },
    /// The peer broke the pbrs protocol (wrong hello, undecodable frame, ...).
    #[error("protocol error: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// A value could not be encoded with bincode/serde.
    #[error("could not encode {what}: {message}")]
    Encode {
        /// What was being encoded ("arguments", "answer").
        what: &'static str,
        /// The encoder's explanation.
        message: String,
    },
    /// An answer arrived but did not decode as the type the caller expects.
    #[error(
        "could not decode the answer: {message}; do both sides use the same version of the \
         remote trait?"
    )]
    Decode {
        /// The decoder's explanation.
        message: String,
    },
    /// Something did not happen in time: connecting, a handshake, or a call (its deadline).
    /// [`kind`](TimeoutKind) says which; [`CallError::is_timeout`] and
    /// [`CallError::timeout_kind`] ask without a `match`.
    #[error("{kind} timed out after {after:?}: {}", .kind.advice())]
    Timeout {
        /// What timed out.
        kind: TimeoutKind,
        /// The limit that was reached.
        after: Duration,
    },
    /// The TLS layer refused the connection or could not be set up: a certificate that is
    /// not the pinned one or not signed by a trusted CA, an expired certificate, a peer that
    /// does not speak TLS, an identity file that does not parse, ...
    #[error("TLS: {message}")]
    Tls {
        /// What failed, and what to do about it.
        message: String,
    },
    /// A `pbrs://` URL that does not parse.
    #[error("bad pbrs:// URL {url:?}: {problem}")]
    InvalidUrl {
        /// The URL as given (its secret left out).
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A method of the blocking facade (`rpc_core::blocking::Client`) was called on a thread
    /// of a tokio runtime, where waiting would block the runtime (tokio refuses to: "Cannot
    /// start a runtime from within a runtime"). Nothing was done.
    #[error(
        "rpc_core::blocking::Client::{method} was called on a thread of a tokio runtime, where \
         blocking would stall the runtime; in async code use the async rpc_core::Client and \
         .await its calls; run blocking code on a thread of its own (std::thread::spawn), or, \
         on a tokio::task::spawn_blocking thread, wait for the async client's calls with \
         tokio::runtime::Handle::current().block_on(...)"
    )]
    BlockingInRuntime {
        /// The method called (`connect`, `call`, ...).
        method: &'static str,
    },
    /// A login was refused (the `login` module: `LoginRef::log_in`).
    #[error("login failed: {0}")]
    Login(#[from] LoginError),
    /// An operating-system level I/O error while binding, accepting or connecting.
    #[error("{context}: {source}")]
    Io {
        /// What pbrs was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CallError {
    /// `true` when the connection is gone ([`CallError::Disconnected`]): calls on it fail
    /// from now on; connect again. A call that fails so may or may not have run.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, CallError::Disconnected { .. })
    }

    /// `true` when something did not happen in time ([`CallError::Timeout`]), whatever it was;
    /// [`timeout_kind`](CallError::timeout_kind) tells a call's deadline from a connect or
    /// handshake timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CallError::Timeout { .. })
    }

    /// What timed out, for a [`CallError::Timeout`]: e.g. `Some(TimeoutKind::Call)` when a
    /// call's deadline passed without an answer (the peer may be stopped, busy or
    /// unreachable; the connection may still be fine).
    pub fn timeout_kind(&self) -> Option<TimeoutKind> {
        match self {
            CallError::Timeout { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The remote error kind, when the peer received the call and answered with an error
    /// ([`CallError::Remote`]): e.g. `Some(RemoteErrorKind::Overloaded)`, worth retrying
    /// later.
    pub fn remote_kind(&self) -> Option<RemoteErrorKind> {
        match self {
            CallError::Remote { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub(crate) fn disconnected(reason: impl Into<String>) -> Self {
        CallError::Disconnected {
            reason: reason.into(),
        }
    }

    pub(crate) fn timeout(kind: TimeoutKind, after: Duration) -> Self {
        CallError::Timeout { kind, after }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        CallError::Protocol {
            message: message.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        CallError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What did not happen in time, in a [`CallError::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the TCP connection ([`Config::connect_timeout`](crate::Config::connect_timeout)).
    Connect,
    /// The TLS handshake of a new connection
    /// ([`Config::handshake_timeout`](crate::Config::handshake_timeout)).
    TlsHandshake,
    /// The pbrs hello exchange of a new connection
    /// ([`Config::handshake_timeout`](crate::Config::handshake_timeout)).
    Handshake,
    /// A call's deadline: no answer in time
    /// ([`ObjectRef::with_timeout`](crate::ObjectRef::with_timeout),
    /// [`Config::default_call_timeout`](crate::Config::default_call_timeout)). The call was
    /// cancelled at the callee; it may or may not have run.
    Call,
}

impl TimeoutKind {
    /// What happened and what to do, for the message of a [`CallError::Timeout`].
    fn advice(self) -> &'static str {
        match self {
            TimeoutKind::Connect => {
                "the server did not accept the connection in time; check the address and that \
                 the server is up and reachable (the limit is Config::connect_timeout)"
            }
            TimeoutKind::TlsHandshake => {
                "the server accepted the connection but did not finish the TLS handshake in \
                 time; is it a TLS server, and is it overloaded? (the limit is \
                 Config::handshake_timeout)"
            }
            TimeoutKind::Handshake => {
                "the peer accepted the connection but did not greet us as a pbrs peer in time; \
                 is it a pbrs server, and is it overloaded? (the limit is \
                 Config::handshake_timeout)"
            }
            TimeoutKind::Call => {
                "the peer did not answer in time (it may be stopped, busy or unreachable), so \
                 the call was cancelled; it may or may not have run. Give calls longer with \
                 `with_timeout` on the reference or Config::default_call_timeout"
            }
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connecting",
            TimeoutKind::TlsHandshake => "the TLS handshake",
            TimeoutKind::Handshake => "the pbrs handshake",
            TimeoutKind::Call => "the call",
        })
    }
}

impl From<RemoteError> for CallError {
    fn from(e: RemoteError) -> Self {
        CallError::Remote {
            kind: e.kind,
            message: e.message,
        }
    }
}

/// Why a login was refused (the `login` module). It travels as the answer of a login
/// call, and [`CallError::Login`] carries it on the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The user name or the password is wrong (which of the two is never said).
    #[error("wrong user name or password")]
    Refused,
    /// Too many logins failed on this connection: the server closes it.
    #[error("too many failed logins on this connection, which the server closes; connect again")]
    TooManyAttempts,
    /// A password would cross the network unencrypted: the server (or this client) refused
    /// to send or check it.
    #[error(
        "a password may not travel over an unencrypted connection: connect with TLS (a \
         pbrs:// URL or Client::connect_tls)"
    )]
    NeedsEncryption,
    /// The server takes no anonymous logins.
    #[error("this server does not allow anonymous logins; log in with a user name and password")]
    AnonymousNotAllowed,
    /// This connection already logged in; connect again to log in as someone else.
    #[error("this connection already logged in; connect again to log in as someone else")]
    AlreadyLoggedIn,
    /// The server's realm would not give this caller an object; the reason is its own.
    #[error("the server refused: {0}")]
    Denied(String),
    /// A reason this version does not know (sent by a newer peer).
    #[serde(other)]
    #[error("refused for a reason this version does not know")]
    Other,
}

/// The kinds of error a peer can answer a call with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemoteErrorKind {
    /// The object has no remotely callable method of that name.
    NoSuchMethod,
    /// No object with that id is exported on this connection (never was, or was released).
    NoSuchObject,
    /// The arguments did not decode as the method's parameter types.
    BadArguments,
    /// The handler panicked; the peer and the connection are still up.
    Panicked,
    /// Too many calls are in flight on this connection; retry later or send fewer at once.
    Overloaded,
    /// The peer is shutting down and takes no new calls.
    ShuttingDown,
    /// The handler's answer could not be sent (it failed to encode or is over the frame limit).
    BadAnswer,
    /// The call's deadline passed before the handler finished; the handler was stopped.
    DeadlineExceeded,
    /// A kind this version does not know (sent by a newer peer); the message says more.
    #[serde(other)]
    Other,
}

impl fmt::Display for RemoteErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            RemoteErrorKind::NoSuchMethod => "no such method",
            RemoteErrorKind::NoSuchObject => "no such object",
            RemoteErrorKind::BadArguments => "bad arguments",
            RemoteErrorKind::Panicked => "handler panicked",
            RemoteErrorKind::Overloaded => "overloaded",
            RemoteErrorKind::ShuttingDown => "shutting down",
            RemoteErrorKind::BadAnswer => "bad answer",
            RemoteErrorKind::DeadlineExceeded => "deadline exceeded",
            RemoteErrorKind::Other => "other",
        };
        f.write_str(s)
    }
}

/// An error as it travels on the wire, from the callee back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// What kind of failure.
    pub kind: RemoteErrorKind,
    /// A short explanation for the caller; never a traceback.
    pub message: String,
}

impl RemoteError {
    /// An error of `kind` with `message`.
    pub fn new(kind: RemoteErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(kind: TimeoutKind) -> CallError {
        CallError::timeout(kind, Duration::from_millis(1500))
    }

    #[test]
    fn each_timeout_says_what_timed_out_and_what_to_do() {
        let cases = [
            (
                TimeoutKind::Connect,
                "connecting timed out after 1.5s",
                "connect_timeout",
            ),
            (
                TimeoutKind::TlsHandshake,
                "the TLS handshake timed out after 1.5s",
                "handshake_timeout",
            ),
            (
                TimeoutKind::Handshake,
                "the pbrs handshake timed out after 1.5s",
                "handshake_timeout",
            ),
            (
                TimeoutKind::Call,
                "the call timed out after 1.5s",
                "with_timeout",
            ),
        ];
        for (kind, starts, names) in cases {
            let text = timeout(kind).to_string();
            assert!(text.starts_with(starts), "{text}");
            assert!(text.contains(names), "{text}");
            assert!(!text.contains(&format!("{kind:?}")), "{text}");
        }
    }

    #[test]
    fn the_predicates_tell_the_kinds_apart() {
        let call = timeout(TimeoutKind::Call);
        assert!(call.is_timeout());
        assert_eq!(call.timeout_kind(), Some(TimeoutKind::Call));
        assert!(!call.is_disconnected());
        assert_eq!(call.remote_kind(), None);

        let connect = timeout(TimeoutKind::Connect);
        assert!(connect.is_timeout());
        assert_eq!(connect.timeout_kind(), Some(TimeoutKind::Connect));

        let gone = CallError::disconnected("the peer closed the connection");
        assert!(gone.is_disconnected());
        assert!(!gone.is_timeout());
        assert_eq!(gone.timeout_kind(), None);

        let remote = CallError::from(RemoteError::new(RemoteErrorKind::Overloaded, "busy"));
        assert_eq!(remote.remote_kind(), Some(RemoteErrorKind::Overloaded));
        assert!(!remote.is_timeout() && !remote.is_disconnected());
    }
}
