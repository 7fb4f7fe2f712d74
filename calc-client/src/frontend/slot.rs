//! What the front end keeps per worker ([`Slot`]), per finished call ([`Done`]) and per way
//! of finding workers ([`Mode`]), and how it connects to and lets go of a worker.

use std::time::{Duration, Instant};

use broker_server::{BrokerCredentials, BrokerRef};
use rpc_core::tls::ClientTls;
use rpc_core::{CallError, Client, Config, RemoteErrorKind, RemoteRef, SturdyUrl};

use crate::calculator::CalculatorRef;

/// A worker the front end uses or tried (found by its URL in `Dispatch::by_url`).
pub(super) struct Slot {
    /// The worker's `host:port`, for reports and logs (never its URL's secret).
    pub(super) addr: String,
    pub(super) id: Option<String>,
    pub(super) calc: Option<CalculatorRef>,
    /// Direct mode: chunks it computes at once, as it said.
    pub(super) capacity: u32,
    pub(super) in_flight: u32,
    pub(super) busy_since: Option<Instant>,
    pub(super) busy: Duration,
    pub(super) chunks: usize,
    pub(super) lost: Option<String>,
}

impl Slot {
    pub(super) fn new(url: &str, id: Option<String>) -> Slot {
        Slot {
            addr: crate::shown_location(url),
            id,
            calc: None,
            capacity: 1,
            in_flight: 0,
            busy_since: None,
            busy: Duration::ZERO,
            chunks: 0,
            lost: None,
        }
    }

    pub(super) fn usable(&self) -> bool {
        self.lost.is_none() && self.calc.is_some()
    }

    /// What the front end says when it stops using this worker for the reason `why`:
    /// "worker 2 (127.0.0.1:8901) is gone (connection lost: ...); its chunks go to the other
    /// workers" when it had chunks (`had_chunks`), else "worker at 127.0.0.1:8901 is not
    /// used: could not connect: ...".
    pub(super) fn lost_note(&self, why: &str, had_chunks: bool) -> String {
        let who = match &self.id {
            Some(id) => format!("worker {id} ({})", self.addr),
            None => format!("worker at {}", self.addr),
        };
        if had_chunks {
            format!("{who} is gone ({why}); its chunks go to the other workers")
        } else {
            format!("{who} is not used: {why}")
        }
    }
}

/// A finished call.
pub(super) struct Done {
    pub(super) chunk: usize,
    pub(super) slot: usize,
    pub(super) result: Result<(u64, u32), CallError>,
    pub(super) at: Instant,
}

pub(super) enum Mode {
    Direct,
    Broker {
        /// The broker's `host:port`, for errors.
        addr: String,
        broker: BrokerRef,
        /// The login, to log in again when the broker comes back after a restart.
        credentials: BrokerCredentials,
        /// Chunks to keep in flight.
        window: usize,
        /// When the window was last sized.
        sized: Instant,
    },
}

/// Connects to the calculator at `url`, over TLS pinned to the URL's fingerprint.
pub(super) async fn connect_worker(
    url: &SturdyUrl,
    config: Config,
) -> Result<CalculatorRef, CallError> {
    Client::connect_url_with(url, &ClientTls::pinned(url.fingerprint()), config).await
}

/// Closes the connection behind `calc`, which fails its calls in flight at once.
pub(super) fn close_connection(object: &impl RemoteRef) {
    if let Some(peer) = object.peer() {
        peer.close();
    }
}

/// Whether a call failing with `e` means the worker cannot be used any more.
pub(super) fn worker_gone(e: &CallError) -> bool {
    match e {
        CallError::Remote { kind, .. } => matches!(
            kind,
            RemoteErrorKind::ShuttingDown
                | RemoteErrorKind::NoSuchMethod
                | RemoteErrorKind::NoSuchObject
                | RemoteErrorKind::BadArguments
        ),
        CallError::FrameTooLarge { .. } | CallError::Encode { .. } => false,
        // Disconnected, Timeout, Io, Protocol, Decode, and anything new.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_worker_is_named_with_what_happens_to_its_chunks() {
        let mut slot = Slot::new("127.0.0.1:8901", Some("2".into()));
        assert_eq!(
            slot.lost_note("connection lost: the peer closed the connection", true),
            "worker 2 (127.0.0.1:8901) is gone (connection lost: the peer closed the \
             connection); its chunks go to the other workers"
        );
        slot.id = None;
        assert_eq!(
            slot.lost_note("could not connect: connection refused", false),
            "worker at 127.0.0.1:8901 is not used: could not connect: connection refused"
        );
    }
}
