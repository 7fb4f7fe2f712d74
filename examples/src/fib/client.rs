//! The client side: take `count` numbers from a fib-server, through a
//! [`ReconnectingClient`], whatever restarts the server goes through meanwhile.
//!
//! A call that fails because the connection was lost, or because the server is stopping, is
//! asked again once the client is connected again. Its number, if the server had saved it, is
//! then skipped (a gap in the sequence); it is never received twice, so nothing is printed
//! twice.

use std::time::Duration;

use num_bigint::BigUint;
use rpc_core::{
    Backoff, CallError, ReconnectOptions, ReconnectingClient, RemoteErrorKind, RemoteRef,
};

use super::service::FibonacciRef;

/// How long to wait for a connection, or for a lost one to be noticed, before saying so in
/// the log and waiting again.
const PATIENCE: Duration = Duration::from_secs(10);

/// Why the numbers could not all be taken.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered something no fib-server would: probably not a fib-server.
    #[error("{server} answered: {source}. Is it a fib-server of this version?")]
    Refused {
        /// The server's address.
        server: String,
        /// What the call said.
        source: CallError,
    },
    /// The numbers could not be passed on (stdout closed, say).
    #[error("cannot write out the numbers: {0}")]
    Output(#[from] std::io::Error),
}

/// Takes `count` numbers from the fib-server at `server` (`HOST:PORT`), passing each to
/// `each` as it arrives, reconnecting as often as needed; returns once it has
/// all of them.
///
/// # Errors
/// [`ClientError::Refused`] when the server is not a fib-server; [`ClientError::Output`]
/// when `each` fails.
pub async fn take(
    server: &str,
    count: u64,
    mut each: impl FnMut(&BigUint) -> std::io::Result<()>,
) -> Result<(), ClientError> {
    let backoff = Backoff::new(Duration::from_millis(50), 2.0, Duration::from_secs(2));
    let client = ReconnectingClient::<FibonacciRef>::connect(
        server,
        ReconnectOptions::default().with_backoff(backoff),
    );
    let mut taken = 0;
    while taken < count {
        // Subscribed before the root is read: a change after that is seen.
        let mut states = client.watch_state();
        let root = match client.root_within(PATIENCE).await {
            Ok(root) => root,
            Err(e) => {
                tracing::warn!("{e}");
                continue;
            }
        };
        if root.peer().is_some_and(|peer| !peer.is_connected()) {
            // A lost connection the client has not replaced yet: wait for it to move on.
            let _ = tokio::time::timeout(PATIENCE, states.changed()).await;
            continue;
        }
        match root.next().await {
            Ok(Ok(number)) => {
                each(&number)?;
                taken += 1;
            }
            Ok(Err(e)) => {
                tracing::warn!("{e}");
                connection_gone(&root).await;
            }
            Err(e) if worth_retrying(&e) => {
                tracing::debug!("asking again after: {e}");
                connection_gone(&root).await;
            }
            Err(source) => {
                return Err(ClientError::Refused {
                    server: server.to_owned(),
                    source,
                });
            }
        }
    }
    client.close();
    Ok(())
}

/// Whether a failed call may work on a new connection, or once the server is back.
fn worth_retrying(e: &CallError) -> bool {
    e.is_disconnected()
        || e.is_timeout()
        || matches!(
            e.remote_kind(),
            Some(RemoteErrorKind::ShuttingDown | RemoteErrorKind::Overloaded)
        )
}

/// Waits (at most [`PATIENCE`]) for the connection behind `root` to close: a server that is
/// stopping closes it soon, and asking again before would only hear that it is stopping.
async fn connection_gone(root: &FibonacciRef) {
    if let Some(peer) = root.peer() {
        let _ = tokio::time::timeout(PATIENCE, peer.disconnected()).await;
    }
}
