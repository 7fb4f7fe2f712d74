//! The metric handles of one connection, registered once and kept: a call then costs a
//! lookup in a short list and two atomic adds, never the registration (which builds the
//! labels on the heap), with or without a recorder.
//!
//! Handles are registered with the recorder installed when the connection is made or its
//! first call of a method ends: install a recorder before making connections. A connection
//! made while no recorder takes its [`CONNECTIONS`] gauge (none is installed, or it filters
//! that gauge out; a thread-local recorder of another thread) counts none of the calls it
//! carries, and they then skip the work of timing and counting them (140 instructions of the
//! 5,800 a call took). A call that fails before it is sent is counted apart (`record_call`).

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, IntoF64};
use tokio::time::Instant;

use super::labels::{Direction, Outcome, register_calls, register_seconds};
use super::{CONNECTIONS, OUTCOMES, RECEIVED_BYTES, SENT_BYTES};

const _: () = assert!(
    Outcome::Failed as usize + 1 == OUTCOMES,
    "one counter per outcome"
);

/// Methods (by direction) a connection keeps handles for; calls of more methods than that (a
/// program calling many names through `call_remote`) register their handles on each call
/// instead.
const MAX_METHODS: usize = 16;

/// One open connection, counted in [`CONNECTIONS`] from its making to its drop, with the
/// handles its bytes and calls are counted in.
pub(crate) struct ConnectionTelemetry {
    open: Gauge,
    /// Bytes read from the peer.
    pub(crate) received: Counter,
    /// Bytes written to the peer.
    pub(crate) sent: Counter,
    /// Its calls, both ways.
    pub(crate) calls: Arc<CallMetrics>,
}

impl ConnectionTelemetry {
    /// Counts a connection open (in the recorder installed now).
    pub(crate) fn open() -> ConnectionTelemetry {
        let open = metrics::gauge!(CONNECTIONS);
        let recorded = Cell::new(false);
        open.increment(Probe(&recorded, 1.0));
        ConnectionTelemetry {
            open,
            received: metrics::counter!(RECEIVED_BYTES),
            sent: metrics::counter!(SENT_BYTES),
            calls: Arc::new(CallMetrics::new(recorded.get())),
        }
    }
}

impl Drop for ConnectionTelemetry {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A value that says when it is taken: `metrics` converts a value only for a handle with a
/// recorder behind it (a no-op handle drops it unread), so a probe given to a handle tells
/// whether anything records what that handle is given.
struct Probe<'a>(&'a Cell<bool>, f64);

impl IntoF64 for Probe<'_> {
    fn into_f64(self) -> f64 {
        self.0.set(true);
        self.1
    }
}

/// A call's time, from `started` to `end`, in seconds when a histogram takes it: a handle
/// without a recorder behind it takes nothing, and then the subtraction (about 40
/// instructions at each end of a call) is not done.
#[derive(Clone, Copy)]
pub(crate) struct Elapsed {
    started: Instant,
    end: Instant,
}

impl Elapsed {
    /// The time from `started` to `end`.
    pub(crate) fn new(started: Instant, end: Instant) -> Elapsed {
        Elapsed { started, end }
    }

    /// The time, in seconds (0 if `end` came first).
    pub(crate) fn seconds(self) -> f64 {
        self.end
            .saturating_duration_since(self.started)
            .as_secs_f64()
    }
}

impl IntoF64 for Elapsed {
    fn into_f64(self) -> f64 {
        self.seconds()
    }
}

/// The handles of one connection's calls, by direction and method: slots filled in order
/// and never emptied, so that finding a method's handles takes no lock.
pub(crate) struct CallMetrics {
    /// A recorder took the connection's gauge: its calls are counted.
    recorded: bool,
    /// Boxed: a connection that calls few methods holds little.
    methods: [OnceLock<Box<MethodMetrics>>; MAX_METHODS],
}

/// The handles of the calls of one method in one direction.
struct MethodMetrics {
    direction: Direction,
    method: Cow<'static, str>,
    seconds: Histogram,
    /// By outcome, registered as each first happens.
    calls: [OnceLock<Counter>; OUTCOMES],
}

#[expect(
    clippy::ptr_arg,
    reason = "a borrowed name stays borrowed in the labels made from it"
)]
impl CallMetrics {
    /// The handles of a connection whose calls are counted if `recorded` (see the module's
    /// docs), else never.
    pub(crate) fn new(recorded: bool) -> CallMetrics {
        CallMetrics {
            recorded,
            methods: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Whether calls are counted here: if not, a call need not be timed for them.
    pub(crate) fn recorded(&self) -> bool {
        self.recorded
    }

    /// Counts one call of `method` that ended with `outcome` after `seconds`.
    pub(crate) fn record(
        &self,
        direction: Direction,
        method: &Cow<'static, str>,
        outcome: Outcome,
        seconds: Elapsed,
    ) {
        let Some(entry) = self.entry(direction, method) else {
            register_calls(direction, method.clone(), outcome).increment(1);
            register_seconds(direction, method.clone()).record(seconds);
            return;
        };
        entry.calls[outcome as usize]
            .get_or_init(|| register_calls(direction, method.clone(), outcome))
            .increment(1);
        entry.seconds.record(seconds);
    }

    /// The handles of `method`'s calls in `direction`, made in the first free slot if it has
    /// none yet; `None` once every slot holds another method's. Two threads that make the
    /// same method's at once may fill two slots: both hold handles of the same series.
    fn entry(&self, direction: Direction, method: &Cow<'static, str>) -> Option<&MethodMetrics> {
        for slot in &self.methods {
            let entry = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| {
                    Box::new(MethodMetrics {
                        direction,
                        method: method.clone(),
                        seconds: register_seconds(direction, method.clone()),
                        calls: Default::default(),
                    })
                }),
            };
            if entry.direction == direction && same_name(&entry.method, method) {
                return Some(entry);
            }
        }
        None
    }
}

/// The same name; at once when both are the same `&'static str` (a generated proxy's, an
/// object's declared name), the usual case.
fn same_name(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::PrometheusBuilder;

    use super::ConnectionTelemetry;

    #[test]
    fn a_connection_counts_its_calls_only_if_a_recorder_takes_its_gauge() {
        assert!(!ConnectionTelemetry::open().calls.recorded(), "no recorder");
        let recorder = PrometheusBuilder::new().build_recorder();
        let opened = metrics::with_local_recorder(&recorder, ConnectionTelemetry::open);
        assert!(opened.calls.recorded(), "a recorder");
        assert!(recorder.handle().render().contains("pbrs_connections 1"));
    }
}
