//! What a connection tells the outside about itself: a `tracing` span per call, and
//! Prometheus-style metrics through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Both cost next to nothing until the application asks for them: a span is made only if a
//! `tracing` subscriber wants it (target `rpc_core::call`, level DEBUG: for example
//! `RUST_LOG=rpc_core::call=debug`), and the metrics go to the no-op recorder unless the
//! application installs one (say `metrics_exporter_prometheus::PrometheusBuilder`). rpc-core
//! never installs a recorder itself. Call [`describe`] once after installing yours to give the
//! metrics their help text and units. Install it before making connections: a connection counts
//! its calls in the recorder installed when it was made (a thread-local recorder counts them
//! only for connections made on its thread), and one made while no recorder takes its
//! [`CONNECTIONS`] gauge (none was installed, or a filter drops that gauge) neither times nor
//! counts the calls it carries (only their spans, if a subscriber wants them; a call that
//! fails before it is sent is still counted).
//!
//! # The span of a call
//!
//! Each call, made or served, over a connection is a span named `call` with the fields
//! `direction` (`outgoing` for a call this side made, `incoming` for one it served), `method`,
//! `interface` and `object` (the object's id on its connection; an outgoing call's interface is
//! the peer's business and is left out), `peer` (its address, or what the transport says
//! of it) and `id` (the request id on that connection). When
//! the call ends, its `outcome` (as in [`CALLS_TOTAL`]) and `seconds` are recorded on the span,
//! just before it closes. A handler runs inside the span of its call, so its own log lines
//! carry them. A served call refused before it runs (overloaded, shutting down, no such
//! object) has a span too, closed at once. Calls of local objects have no span and are not
//! counted.
//!
//! # The metrics
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`CONNECTIONS`] `pbrs_connections` | gauge: connections open now | |
//! | [`CALLS_TOTAL`] `pbrs_calls_total` | counter: calls ended | `direction`, `method`, `outcome` |
//! | [`CALL_SECONDS`] `pbrs_call_seconds` | histogram: time from sent/arrived to ended | `direction`, `method` |
//! | [`RECEIVED_BYTES`] `pbrs_received_bytes_total` | counter: bytes read from peers | |
//! | [`SENT_BYTES`] `pbrs_sent_bytes_total` | counter: bytes written to peers | |
//!
//! Clocks are read once per burst where that is enough: a served call starts when the burst of
//! frames it came in began to be read, the calls a burst's task (or its reader) answers at
//! their handler's first poll end when the first of them is answered, and a call this side made
//! ends when the burst carrying its answer began to be read. Short calls are thus timed to
//! within the reading of one burst (microseconds; tens of them for a burst of 64 calls); a
//! handler that awaits is timed to when its answer is queued.
//!
//! The byte counts are those of pbrs's frames after the handshake, length prefixes included,
//! as handed to the transport: TLS adds its records' few bytes and its handshake on top.
//!
//! `outcome` is one of: `ok` (answered with a value; an application's `Err` is a value too),
//! `error` (answered with an error: no such method, bad arguments, a panic in the handler...),
//! `refused` (turned away before running: overloaded or shutting down), `timeout` (its
//! deadline passed), `cancelled` (the caller gave up, or the connection closed while a served
//! call ran), `disconnected` (a call this side made lost its connection), `failed` (a call this
//! side made could not be sent or its answer not read: too large, not encodable, not
//! decodable). A served call's `method` is the name the object declares, or `unknown` for a
//! name it does not have: a peer cannot make the recorder hold a label per name it invents.

mod call;
mod handles;
mod labels;

pub(crate) use call::{CallSite, CallTelemetry};
pub(crate) use handles::{CallMetrics, ConnectionTelemetry};
pub(crate) use labels::{Direction, Outcome, record_call};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Gauge: connections open now (from the end of the handshake to the close).
pub const CONNECTIONS: &str = "pbrs_connections";
/// Counter: calls ended, by `direction`, `method` and `outcome`.
pub const CALLS_TOTAL: &str = "pbrs_calls_total";
/// Histogram: seconds from a call's start (sent, or arrived) to its end, by `direction` and
/// `method`.
pub const CALL_SECONDS: &str = "pbrs_call_seconds";
/// Counter: bytes read from peers.
pub const RECEIVED_BYTES: &str = "pbrs_received_bytes_total";
/// Counter: bytes written to peers.
pub const SENT_BYTES: &str = "pbrs_sent_bytes_total";

/// Bucket bounds (seconds) that suit [`CALL_SECONDS`], for a recorder that renders histograms
/// with buckets (Prometheus's `set_buckets_for_metric`): from 50 µs, a call between two
/// processes on one machine, to 10 s, the default call deadline.
pub const CALL_SECONDS_BUCKETS: [f64; 11] = [
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 500e-3, 2.5, 10.0,
];

/// The label of a served call whose method the object does not have.
const UNKNOWN_METHOD: &str = "unknown";

/// Outcomes there are (see [`Outcome`]).
const OUTCOMES: usize = 7;

/// Gives rpc-core's metrics their help text and units in the recorder installed now (call it
/// after installing one; without one it does nothing).
pub fn describe() {
    describe_gauge!(CONNECTIONS, Unit::Count, "pbrs connections open now");
    describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "pbrs calls ended, by direction (incoming: served; outgoing: made), method and outcome"
    );
    describe_histogram!(
        CALL_SECONDS,
        Unit::Seconds,
        "time from a pbrs call's start (sent, or arrived) to its end"
    );
    describe_counter!(
        RECEIVED_BYTES,
        Unit::Bytes,
        "bytes of pbrs frames read from peers"
    );
    describe_counter!(
        SENT_BYTES,
        Unit::Bytes,
        "bytes of pbrs frames written to peers"
    );
}
