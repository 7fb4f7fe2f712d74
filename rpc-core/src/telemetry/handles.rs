//! The metric handles of one connection, registered once and kept: a call then costs a
//! lookup in a short list and two atomic adds, never the registration (which builds the
//! labels on the heap), with or without a recorder.
//!
//! Handles are registered with the recorder installed when the connection is made or its
//! first call of a method ends: install a recorder before making connections.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::labels::{Direction, Outcome, register_calls, register_seconds};
use super::{CONNECTIONS, OUTCOMES, RECEIVED_BYTES, SENT_BYTES};

const _: () = assert!(
    Outcome::Failed as usize + 1 == OUTCOMES,
    "one counter per outcome"
);

/// Methods a connection keeps handles for; calls of more methods than that (a program calling
/// many names through `call_remote`) register their handles on each call instead.
const MAX_METHODS: usize = 64;

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
        open.increment(1.0);
        ConnectionTelemetry {
            open,
            received: metrics::counter!(RECEIVED_BYTES),
            sent: metrics::counter!(SENT_BYTES),
            calls: Arc::default(),
        }
    }
}

impl Drop for ConnectionTelemetry {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// The handles of one connection's calls, by direction and method.
#[derive(Default)]
pub(crate) struct CallMetrics {
    methods: Mutex<Vec<MethodMetrics>>,
}

/// The handles of the calls of one method in one direction.
struct MethodMetrics {
    direction: Direction,
    method: Cow<'static, str>,
    seconds: Histogram,
    /// By outcome, registered as each first happens.
    calls: [Option<Counter>; OUTCOMES],
}

impl CallMetrics {
    /// Counts one call of `method` that ended with `outcome` after `seconds`.
    #[expect(
        clippy::ptr_arg,
        reason = "a borrowed name stays borrowed in the labels made from it"
    )]
    pub(crate) fn record(
        &self,
        direction: Direction,
        method: &Cow<'static, str>,
        outcome: Outcome,
        seconds: Duration,
    ) {
        let mut methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let found = methods
            .iter()
            .position(|m| m.direction == direction && same_name(&m.method, method));
        let index = match found {
            Some(index) => index,
            None if methods.len() < MAX_METHODS => {
                methods.push(MethodMetrics {
                    direction,
                    method: method.clone(),
                    seconds: register_seconds(direction, method.clone()),
                    calls: Default::default(),
                });
                methods.len() - 1
            }
            None => {
                drop(methods);
                register_calls(direction, method.clone(), outcome).increment(1);
                register_seconds(direction, method.clone()).record(seconds.as_secs_f64());
                return;
            }
        };
        let entry = &mut methods[index];
        entry.calls[outcome as usize]
            .get_or_insert_with(|| register_calls(direction, method.clone(), outcome))
            .increment(1);
        entry.seconds.record(seconds.as_secs_f64());
    }
}

/// The same name; at once when both are the same `&'static str` (a generated proxy's, an
/// object's declared name), the usual case.
fn same_name(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}
