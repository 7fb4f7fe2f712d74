//! The broker's metrics, recorded through the [`metrics`] facade, and a Prometheus recorder
//! for a program to install.
//!
//! The [`BrokerService`](crate::BrokerService) records:
//! - [`WORKERS`] (`pbrs_broker_workers`), a gauge per `state` label (`idle`, `working`,
//!   `full`: see [`WorkerLoad`]): the queued workers in each state, summed over every
//!   service of the process;
//! - [`HANDED_OUT`] (`pbrs_broker_handed_out_total`), a counter of workers handed out;
//! - [`NEXT_WORKER_SECONDS`] (`pbrs_broker_next_worker_seconds`), a histogram of the time
//!   one `next_worker` takes in the service (waiting for the queue's lock included), whether
//!   it found a worker to hand out or not.
//!
//! # Who installs the recorder
//!
//! The facade records into the *global* recorder, which a process can install once. The
//! library never installs one by itself: a program that embeds a broker may have its own
//! recorder (or none, and then recording costs next to nothing). The `broker-server` binary
//! calls [`install_prometheus`] when given `--http`, and hands the returned
//! [`PrometheusHandle`] to the HTTP side, which renders it at `/metrics`. A program with
//! its own Prometheus recorder passes its own handle instead.

use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::activity::{Transition, WorkerLoad};

/// The gauge of queued workers, labelled by `state`.
pub const WORKERS: &str = "pbrs_broker_workers";
/// The counter of hand-outs.
pub const HANDED_OUT: &str = "pbrs_broker_handed_out_total";
/// The histogram of the time one hand-out takes.
pub const NEXT_WORKER_SECONDS: &str = "pbrs_broker_next_worker_seconds";

/// The buckets of [`NEXT_WORKER_SECONDS`], in seconds: a hand-out takes microseconds
/// unless the queue's lock is contended.
const NEXT_WORKER_BUCKETS: [f64; 9] = [
    1e-6, 5e-6, 25e-6, 100e-6, 500e-6, 2.5e-3, 10e-3, 50e-3, 250e-3,
];

/// Installs a Prometheus recorder as the process's global [`metrics`] recorder and returns
/// the handle that renders what it recorded (what the HTTP side serves at `/metrics`).
/// [`NEXT_WORKER_SECONDS`] is rendered as a histogram with buckets from 1 µs to 250 ms, and
/// rpc-core's `pbrs_call_seconds` with
/// [`CALL_SECONDS_BUCKETS`](rpc_core::telemetry::CALL_SECONDS_BUCKETS); rpc-core's metrics
/// (connections, calls, bytes: see [`rpc_core::telemetry`]) are described too.
///
/// Call it once, early, in a program's `main`; the library never calls it.
///
/// # Errors
/// When a global recorder is installed already (by this or another library).
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(NEXT_WORKER_SECONDS.to_owned()),
            &NEXT_WORKER_BUCKETS,
        )
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full(rpc_core::telemetry::CALL_SECONDS.to_owned()),
                &rpc_core::telemetry::CALL_SECONDS_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the Prometheus metrics recorder: {e}"))?;
    describe();
    rpc_core::telemetry::describe();
    Ok(handle)
}

/// Describes the broker's metrics to the installed recorder (their `# HELP` lines).
pub fn describe() {
    describe_gauge!(
        WORKERS,
        Unit::Count,
        "Queued workers, by state (idle, working, full)."
    );
    describe_counter!(HANDED_OUT, Unit::Count, "Workers handed out to front ends.");
    describe_histogram!(
        NEXT_WORKER_SECONDS,
        Unit::Seconds,
        "Time the broker took to hand out one worker."
    );
}

/// Records one `next_worker` that took `took` and handed a worker out or not.
pub(crate) fn next_worker(took: Duration, handed_out: bool) {
    if handed_out {
        metrics::counter!(HANDED_OUT).increment(1);
    }
    metrics::histogram!(NEXT_WORKER_SECONDS).record(took.as_secs_f64());
}

/// Moves one worker between the [`WORKERS`] gauges.
pub(crate) fn moved(transition: Transition) {
    if transition.from == transition.to {
        return;
    }
    if let Some(from) = transition.from {
        workers(from).decrement(1.0);
    }
    if let Some(to) = transition.to {
        workers(to).increment(1.0);
    }
}

/// Takes `count` workers in state `load` off the [`WORKERS`] gauges (a service that goes
/// away with workers still queued).
pub(crate) fn forget(load: WorkerLoad, count: u64) {
    if count > 0 {
        workers(load).decrement(count as f64);
    }
}

fn workers(load: WorkerLoad) -> metrics::Gauge {
    metrics::gauge!(WORKERS, "state" => load.label())
}
