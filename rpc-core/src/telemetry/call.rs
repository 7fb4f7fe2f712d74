//! How one call is seen from outside: its span, and how it ended.

use std::borrow::Cow;

use tokio::time::Instant;
use tracing::Span;

use super::UNKNOWN_METHOD;
use super::handles::{CallMetrics, Elapsed};
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

/// One call's span and clock, from its start to its end: [`CallTelemetry::finish_at`] records
/// how it ended, in its connection's metric handles. It holds no handle of its own (a count
/// taken and given back per call): its owner, which holds the connection, finishes it, also
/// when the call is dropped unfinished (`cancelled`). A call made and not yet sent holds one
/// [`unstarted`](CallTelemetry::unstarted), for its method's name, and is counted only if it
/// [began](CallTelemetry::begin). A call neither counted (its connection's recorder takes
/// nothing) nor in a span is not timed at all: it has none once started.
pub(crate) struct CallTelemetry {
    /// Boxed, and only when a subscriber wants it: a call without one carries 8 bytes.
    span: Option<Box<Span>>,
    /// `None`: not started (and so never counted).
    started: Option<Instant>,
    direction: Direction,
    /// The `method` label: a name the program or the object declares, never a peer's.
    method: Cow<'static, str>,
}

impl CallTelemetry {
    /// A call starting at `started` (the time already read for its deadline, if any), with
    /// the method label `method` (`None`: a served call's name the object does not have), to
    /// be counted in `metrics`; `None` if it is neither counted nor in a span.
    pub(crate) fn start(
        site: CallSite<'_>,
        method: Option<Cow<'static, str>>,
        started: Instant,
        metrics: &CallMetrics,
    ) -> Option<CallTelemetry> {
        let span = span_of(&site);
        timed(&span, metrics).then(|| CallTelemetry {
            span,
            started: Some(started),
            direction: site.direction,
            method: method.unwrap_or(Cow::Borrowed(UNKNOWN_METHOD)),
        })
    }

    /// A call of `method` in `direction` that has not started: [`CallTelemetry::begin`] starts
    /// it.
    pub(crate) fn unstarted(direction: Direction, method: Cow<'static, str>) -> CallTelemetry {
        CallTelemetry {
            span: None,
            started: None,
            direction,
            method,
        }
    }

    /// Starts a call made [`unstarted`](CallTelemetry::unstarted): of the peer's object
    /// `object`, over the connection to `peer`, with request id `id`, at `started()` (called
    /// only if the call is timed), to be counted in `metrics`; `None` if it is neither counted
    /// nor in a span.
    pub(crate) fn begin(
        mut self,
        (object, peer, id): (u64, &str, u64),
        started: impl FnOnce() -> Instant,
        metrics: &CallMetrics,
    ) -> Option<CallTelemetry> {
        let site = CallSite {
            direction: self.direction,
            method: &self.method,
            interface: None,
            object,
            peer,
            id,
        };
        self.span = span_of(&site);
        if !timed(&self.span, metrics) {
            return None;
        }
        self.started = Some(started());
        Some(self)
    }

    /// The call's span, to run its handler in (`None`: no subscriber wants it).
    pub(crate) fn span(&self) -> Option<&Span> {
        self.span.as_deref()
    }

    /// Records in `metrics` how the call ended, now (if it started).
    pub(crate) fn finish(self, metrics: &CallMetrics, outcome: Outcome) {
        if self.started.is_some() {
            self.finish_at(metrics, outcome, Instant::now());
        }
    }

    /// Records in `metrics` how the call ended, at `end` (a time already read), if it started.
    pub(crate) fn finish_at(self, metrics: &CallMetrics, outcome: Outcome, end: Instant) {
        let Some(started) = self.started else {
            return;
        };
        let elapsed = Elapsed::new(started, end);
        if metrics.recorded() {
            metrics.record(self.direction, &self.method, outcome, elapsed);
        }
        if let Some(span) = &self.span {
            span.record("outcome", outcome.as_str());
            span.record("seconds", elapsed.seconds());
        }
    }
}

/// Whether a call with `span` is timed: for its span, or to be counted in `metrics`.
fn timed(span: &Option<Box<Span>>, metrics: &CallMetrics) -> bool {
    span.is_some() || metrics.recorded()
}

/// The span of the call at `site`, if a subscriber wants it.
fn span_of(site: &CallSite<'_>) -> Option<Box<Span>> {
    // Asked first: without a subscriber, a program whose `tracing` has its `log` feature
    // (tarpc turns it on) would otherwise hand every call's fields to `log`.
    tracing::enabled!(target: "rpc_core::call", tracing::Level::DEBUG).then(|| {
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
    })
}
