//! How one call is seen from outside: its span, and how it ended.

use std::borrow::Cow;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::Span;

use super::UNKNOWN_METHOD;
use super::handles::CallMetrics;
use super::labels::{Direction, Outcome};

/// What identifies a call in its span (read only if a subscriber wants the span).
pub(crate) struct CallSite<'a> {
    pub(crate) direction: Direction,
    pub(crate) method: &'a str,
    pub(crate) interface: Option<&'static str>,
    pub(crate) object: u64,
    pub(crate) peer: &'a str,
    pub(crate) id: u64,
}

/// One call's span and clock, from its start to its end: [`CallTelemetry::finish`] records
/// how it ended; dropped unfinished, it ended `cancelled`.
pub(crate) struct CallTelemetry {
    /// Boxed, and only when a subscriber wants it: a call without one carries 8 bytes.
    span: Option<Box<Span>>,
    started: Instant,
    direction: Direction,
    /// The `method` label: a name the program or the object declares, never a peer's.
    method: Cow<'static, str>,
    /// Its connection's handles.
    metrics: Arc<CallMetrics>,
    finished: bool,
}

impl CallTelemetry {
    /// A call starting at `started` (the time already read for its deadline, if any), with
    /// the method label `method` (`None`: a served call's name the object does not have),
    /// counted in `metrics`.
    pub(crate) fn start(
        site: CallSite<'_>,
        method: Option<Cow<'static, str>>,
        started: Instant,
        metrics: &Arc<CallMetrics>,
    ) -> CallTelemetry {
        // Asked first: without a subscriber, a program whose `tracing` has its `log` feature
        // (tarpc turns it on) would otherwise hand every call's fields to `log`.
        let span = tracing::enabled!(target: "rpc_core::call", tracing::Level::DEBUG).then(|| {
            Box::new(tracing::debug_span!(
                target: "rpc_core::call",
                "call",
                direction = site.direction.as_str(),
                method = site.method,
                interface = site.interface,
                object = site.object,
                peer = site.peer,
                id = site.id,
                outcome = tracing::field::Empty,
                seconds = tracing::field::Empty,
            ))
        });
        CallTelemetry {
            span,
            started,
            direction: site.direction,
            method: method.unwrap_or(Cow::Borrowed(UNKNOWN_METHOD)),
            metrics: Arc::clone(metrics),
            finished: false,
        }
    }

    /// The call's span, to run its handler in (`None`: no subscriber wants it).
    pub(crate) fn span(&self) -> Option<&Span> {
        self.span.as_deref()
    }

    /// Records how the call ended, now.
    pub(crate) fn finish(self, outcome: Outcome) {
        self.finish_at(outcome, Instant::now());
    }

    /// Records how the call ended, at `end` (a time already read).
    pub(crate) fn finish_at(mut self, outcome: Outcome, end: Instant) {
        self.record(outcome, end);
    }

    fn record(&mut self, outcome: Outcome, end: Instant) {
        self.finished = true;
        let seconds = end.saturating_duration_since(self.started);
        self.metrics
            .record(self.direction, &self.method, outcome, seconds);
        if let Some(span) = &self.span {
            span.record("outcome", outcome.as_str());
            span.record("seconds", seconds.as_secs_f64());
        }
    }
}

impl Drop for CallTelemetry {
    fn drop(&mut self) {
        if !self.finished {
            self.record(Outcome::Cancelled, Instant::now());
        }
    }
}
