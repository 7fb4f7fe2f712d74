//! What went wrong, in the demo's words: the reasons the front end and a worker's broker
//! link give when a connection or a call fails.
//!
//! rpc-core's errors each describe one layer, for a program that holds the connection:
//! "could not connect (is the server running, and is the address right?): ...",
//! "disconnected: ...; connect again to make further calls". Wrapped once more by a caller
//! that says "could not connect" too, or shown to a person watching the demo (who cannot
//! "connect again"), they repeat themselves or ask for the impossible. The functions here
//! turn a [`CallError`] into the *why* of a sentence whose caller says *who* (a worker, by
//! id and address; the broker) and *what happens next* (its chunks go to other workers, the
//! link retries), so that each layer adds something:
//!
//! - [`connect_failure`]: "could not connect: connection refused (os error 111); is the
//!   worker running, and is its address right?", said once; [`connect_cause`] for a caller
//!   that words the first half itself ("could not reach the broker at ...: CAUSE");
//! - [`call_failure`]: "connection lost: the peer closed the connection"; [`call_cause`]
//!   after a caller's own "link lost";
//! - [`wrong_server`]: a URL that names a worker where a broker was expected, or the other
//!   way round, found from the remote trait the error names (a `Calculator` where a `Login`
//!   was expected: "a calculator worker, not a broker: ...").

use broker_server::Role;
use rpc_core::login::LoginRef;
use rpc_core::{CallError, RemoteErrorKind, RemoteRef, TimeoutKind};

use crate::calculator::CalculatorRef;

/// What a URL or address was meant to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// A broker: its login object (`Login`).
    Broker,
    /// A calculator worker (`Calculator`).
    Worker,
}

impl Expected {
    /// The remote trait of what is expected.
    fn interface(self) -> &'static str {
        match self {
            Expected::Broker => LoginRef::INTERFACE,
            Expected::Worker => CalculatorRef::INTERFACE,
        }
    }

    /// What it is, for people.
    fn name(self) -> &'static str {
        match self {
            Expected::Broker => "broker",
            Expected::Worker => "worker",
        }
    }
}

/// The remote trait of the object a URL named, when `e` says it is not the one asked for:
/// rpc-core's "the object the URL names is a `Calculator`, not a `Login`" (a typed
/// connection to a URL), or "`Calculator` has no remote method `log_in`" (a call the object
/// does not have).
pub fn found_interface(e: &CallError) -> Option<&str> {
    let name_after = |text: &'_ str, marker: &str| -> Option<(usize, usize)> {
        let start = text.find(marker)? + marker.len();
        let len = text[start..].find('`')?;
        Some((start, start + len))
    };
    match e {
        CallError::Decode { message } if message.contains(", not a `") => {
            let (start, end) = name_after(message, " is a `")?;
            Some(&message[start..end])
        }
        CallError::Remote {
            kind: RemoteErrorKind::NoSuchMethod,
            message,
        } if message.starts_with('`') => {
            let (start, end) = name_after(message, "`")?;
            Some(&message[start..end])
        }
        _ => None,
    }
}

/// "a calculator worker, not a broker: WHAT TO GIVE INSTEAD" when `e` says the URL names
/// something other than `expected`; `None` for any other error. The caller puts who it is
/// in front: "127.0.0.1:8901 is ...".
pub fn wrong_server(expected: Expected, e: &CallError) -> Option<String> {
    let found = found_interface(e)?;
    if found == expected.interface() {
        return None;
    }
    let what = if found == CalculatorRef::INTERFACE {
        "a calculator worker".to_owned()
    } else if found == LoginRef::INTERFACE {
        "a broker (its login object)".to_owned()
    } else {
        format!("a `{found}` object")
    };
    let instead = match expected {
        Expected::Broker => format!(
            "use the broker's URL: the `broker url:` line broker-server prints, which \
             `broker-server add-user` writes into the credentials files of {} and {} users",
            Role::Worker,
            Role::FrontEnd,
        ),
        Expected::Worker if found == LoginRef::INTERFACE => {
            "to run the job through a broker, give a front-end user's credentials with \
             --credentials FILE instead of --workers"
                .to_owned()
        }
        Expected::Worker => {
            "give the worker's URL: the `worker url:` line calc-worker prints".to_owned()
        }
    };
    Some(format!("{what}, not a {}: {instead}", expected.name()))
}

/// Why connecting to a worker or the broker failed, for a sentence that already says it
/// could not connect or reach it: the OS's reason ("connection refused (os error 111)"),
/// "no answer within 3s", what the URL names instead ([`wrong_server`]), or rpc-core's own
/// description (a TLS pin that does not match, say).
pub fn connect_cause(expected: Expected, e: &CallError) -> String {
    if let Some(wrong) = wrong_server(expected, e) {
        return format!("it is {wrong}");
    }
    match e {
        // rpc-core's context says "could not connect": the caller says that.
        CallError::Io { source, .. } => lowercase_first(&source.to_string()),
        CallError::Timeout {
            kind: TimeoutKind::Connect,
            after,
        } => format!("no answer within {after:?}"),
        CallError::Disconnected { reason } => reason.clone(),
        _ => e.to_string(),
    }
}

/// Why connecting to a worker or the broker failed, starting "could not connect" exactly
/// once (or saying what the URL names instead, see [`wrong_server`]), with a hint when
/// nothing answered at the address.
pub fn connect_failure(expected: Expected, e: &CallError) -> String {
    let cause = connect_cause(expected, e);
    match e {
        _ if wrong_server(expected, e).is_some() => cause,
        CallError::Io { .. } => format!(
            "could not connect: {cause}; is the {} running, and is its address right?",
            expected.name()
        ),
        _ => format!("could not connect: {cause}"),
    }
}

/// Why a call failed, for a sentence that already says the connection is lost or the
/// server gone ("broker link lost: CAUSE"): the connection's reason for closing, without
/// "disconnected" or "connect again"; "it is shutting down"; or the error as rpc-core says
/// it.
pub fn call_cause(e: &CallError) -> String {
    match e {
        CallError::Disconnected { reason } => reason.clone(),
        CallError::Remote {
            kind: RemoteErrorKind::ShuttingDown,
            ..
        } => "it is shutting down".to_owned(),
        _ => e.to_string(),
    }
}

/// Why a call to a worker (or the broker) failed, for a line that says which and what
/// happens next (its chunks go to other workers; the job fails): "connection lost: REASON",
/// never "connect again" (the front end does that itself, or not at all).
pub fn call_failure(e: &CallError) -> String {
    match e {
        CallError::Disconnected { .. } => format!("connection lost: {}", call_cause(e)),
        _ => call_cause(e),
    }
}

/// `text` with its first letter in lower case, to continue a sentence ("Connection refused
/// (os error 111)" from the OS).
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::*;

    fn io_error(kind: io::ErrorKind, text: &str) -> CallError {
        CallError::Io {
            context: "could not connect (is the server running, and is the address right?)".into(),
            source: io::Error::new(kind, text),
        }
    }

    #[test]
    fn a_refused_connection_says_could_not_connect_once() {
        let e = io_error(io::ErrorKind::ConnectionRefused, "Connection refused");
        let why = connect_failure(Expected::Worker, &e);
        assert_eq!(
            why,
            "could not connect: connection refused; is the worker running, and is its \
             address right?"
        );
        assert_eq!(why.matches("could not connect").count(), 1, "{why}");
        let timeout = CallError::Timeout {
            kind: TimeoutKind::Connect,
            after: Duration::from_secs(3),
        };
        assert_eq!(
            connect_failure(Expected::Broker, &timeout),
            "could not connect: no answer within 3s"
        );
        assert_eq!(connect_cause(Expected::Broker, &e), "connection refused");
    }

    #[test]
    fn a_lost_connection_never_says_connect_again() {
        let e = CallError::Disconnected {
            reason: "the peer closed the connection".into(),
        };
        assert!(e.to_string().contains("connect again"), "{e}");
        assert_eq!(
            call_failure(&e),
            "connection lost: the peer closed the connection"
        );
        let handshake = CallError::Disconnected {
            reason: "the peer closed the connection during the handshake".into(),
        };
        assert_eq!(
            connect_failure(Expected::Worker, &handshake),
            "could not connect: the peer closed the connection during the handshake"
        );
    }

    #[test]
    fn the_interface_is_found_in_both_forms_of_error() {
        let decode = CallError::Decode {
            message: "the object the URL names is a `Calculator`, not a `Login`".into(),
        };
        let no_method = CallError::Remote {
            kind: RemoteErrorKind::NoSuchMethod,
            message: "`Login` has no remote method `info` (callable names ...)".into(),
        };
        assert_eq!(found_interface(&decode), Some("Calculator"));
        assert_eq!(found_interface(&no_method), Some("Login"));
        let other = CallError::Decode {
            message: "unexpected end of input".into(),
        };
        assert_eq!(found_interface(&other), None);
        assert_eq!(wrong_server(Expected::Worker, &decode), None);

        let why = wrong_server(Expected::Broker, &decode).unwrap();
        assert!(
            why.starts_with("a calculator worker, not a broker: use the broker's URL"),
            "{why}"
        );
        let why = connect_failure(Expected::Worker, &no_method);
        assert!(
            why.starts_with("it is a broker (its login object), not a worker: ")
                && why.contains("--credentials FILE instead of --workers"),
            "{why}"
        );
        let elsewhere = CallError::Remote {
            kind: RemoteErrorKind::NoSuchMethod,
            message: "`Greeter` has no remote method `info`".into(),
        };
        assert_eq!(
            wrong_server(Expected::Worker, &elsewhere).as_deref(),
            Some(
                "a `Greeter` object, not a worker: give the worker's URL: the `worker url:` \
                 line calc-worker prints"
            )
        );
    }
}
