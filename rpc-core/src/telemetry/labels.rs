//! The labels of a call's metrics, and the handles registered under them.

use std::borrow::Cow;
use std::time::Duration;

use metrics::{Counter, Histogram};

use super::{CALL_SECONDS, CALLS_TOTAL};
use crate::error::{CallError, RemoteErrorKind};

/// Which side of a call this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A call this side made.
    Outgoing,
    /// A call a peer made, served here.
    Incoming,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::Outgoing => "outgoing",
            Direction::Incoming => "incoming",
        }
    }
}

/// How a call ended (see the module docs of `telemetry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Refused,
    Timeout,
    Cancelled,
    Disconnected,
    Failed,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Disconnected => "disconnected",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome of a call answered with an error of this kind.
    pub(crate) fn of_remote(kind: RemoteErrorKind) -> Outcome {
        match kind {
            RemoteErrorKind::Overloaded | RemoteErrorKind::ShuttingDown => Outcome::Refused,
            RemoteErrorKind::DeadlineExceeded => Outcome::Timeout,
            _ => Outcome::Error,
        }
    }

    /// The outcome of a call this side made that ended so.
    pub(crate) fn of_call<T>(result: &Result<T, CallError>) -> Outcome {
        result.as_ref().err().map_or(Outcome::Ok, Outcome::of_error)
    }

    /// The outcome of a call this side made that failed with `error`.
    pub(crate) fn of_error(error: &CallError) -> Outcome {
        match error {
            CallError::Remote { kind, .. } => Outcome::of_remote(*kind),
            e if e.is_timeout() => Outcome::Timeout,
            e if e.is_disconnected() => Outcome::Disconnected,
            _ => Outcome::Failed,
        }
    }
}

/// Counts one call that ended so, after `seconds`, without a connection's handles (a call
/// that failed before it was sent).
pub(crate) fn record_call(
    direction: Direction,
    method: Cow<'static, str>,
    outcome: Outcome,
    seconds: Duration,
) {
    register_calls(direction, method.clone(), outcome).increment(1);
    register_seconds(direction, method).record(seconds.as_secs_f64());
}

/// The [`CALLS_TOTAL`] counter of these labels.
pub(crate) fn register_calls(
    direction: Direction,
    method: Cow<'static, str>,
    outcome: Outcome,
) -> Counter {
    metrics::counter!(
        CALLS_TOTAL,
        "direction" => direction.as_str(),
        "method" => method,
        "outcome" => outcome.as_str()
    )
}

/// The [`CALL_SECONDS`] histogram of these labels.
pub(crate) fn register_seconds(direction: Direction, method: Cow<'static, str>) -> Histogram {
    metrics::histogram!(CALL_SECONDS, "direction" => direction.as_str(), "method" => method)
}
