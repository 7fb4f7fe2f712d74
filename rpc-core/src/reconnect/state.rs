//! [`ConnectionState`]: what a [`ReconnectingClient`](super::ReconnectingClient) is doing,
//! as its `state()` and `watch_state()` report it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::CallError;

/// Where a [`ReconnectingClient`](super::ReconnectingClient) stands. Read it with
/// `state()`, or follow every change with `watch_state()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connected: calls through `root()` go to the server.
    Connected {
        /// When this connection was made.
        since: Instant,
        /// The server's address, as the connection sees it.
        peer: String,
        /// How many connections the client has made so far, this one included (1 for the
        /// first; more after reconnections).
        connections: u64,
    },
    /// Not connected, trying: before the first connection (`lost` is `None`) and after each
    /// loss. Calls through references of a lost connection fail with
    /// [`CallError::Disconnected`]; `root()` fails until the next connection is made.
    Reconnecting {
        /// When the client began trying: the loss of the connection, or the start.
        since: Instant,
        /// Attempts that failed since then.
        attempts: u32,
        /// Why the last attempt failed, once one has.
        last_error: Option<Arc<CallError>>,
        /// Why the previous connection was lost; `None` before the first connection.
        lost: Option<String>,
    },
    /// Closed with [`close`](super::ReconnectingClient::close) (or every handle dropped): the
    /// client connects no more.
    Closed,
}

impl ConnectionState {
    /// `true` when connected.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }

    /// `true` once the client is closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, ConnectionState::Closed)
    }

    /// Failed attempts since the client began trying to (re)connect; 0 when connected or
    /// closed.
    pub fn attempts(&self) -> u32 {
        match self {
            ConnectionState::Reconnecting { attempts, .. } => *attempts,
            _ => 0,
        }
    }

    /// The state at the start: trying, nothing failed yet.
    pub(crate) fn starting() -> Self {
        ConnectionState::Reconnecting {
            since: Instant::now(),
            attempts: 0,
            last_error: None,
            lost: None,
        }
    }
}

/// How long ago `since` was, for a person: "1.5 s", "12 ms".
fn ago(since: Instant) -> String {
    let elapsed = since.elapsed();
    if elapsed < Duration::from_secs(1) {
        format!("{} ms", elapsed.as_millis())
    } else {
        format!("{:.1} s", elapsed.as_secs_f64())
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Connected {
                since,
                peer,
                connections,
            } => write!(
                f,
                "connected to {peer} for {} (connection {connections})",
                ago(*since)
            ),
            ConnectionState::Reconnecting {
                since,
                attempts,
                last_error,
                lost,
            } => {
                match lost {
                    Some(lost) => write!(f, "the connection was lost ({lost}); reconnecting")?,
                    None => f.write_str("connecting")?,
                }
                write!(f, " for {}, {attempts} failed attempts", ago(*since))?;
                match last_error {
                    Some(e) => write!(f, ", the last: {e}"),
                    None => Ok(()),
                }
            }
            ConnectionState::Closed => f.write_str("the reconnecting client was closed"),
        }
    }
}
