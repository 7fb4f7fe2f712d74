//! What the front end keeps per worker ([`Slot`]), per finished call ([`Done`]) and per way
//! of finding workers ([`Mode`]), and how it connects to and lets go of a worker.

use std::time::{Duration, Instant};

use broker_server::BrokerRef;
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
