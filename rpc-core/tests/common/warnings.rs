//! The warnings a server logs, captured (once per test binary) so that tests can read them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use tokio::sync::watch;

use super::within;

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Counts the warnings logged, for tests that wait for one.
fn logged() -> &'static watch::Sender<usize> {
    static LOGGED: OnceLock<watch::Sender<usize>> = OnceLock::new();
    LOGGED.get_or_init(|| watch::Sender::new(0))
}

/// Records every WARN event as `field=value ` pairs.
struct WarningLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarningLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let _ = write!(self.0, "{}={value:?} ", field.name());
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        WARNINGS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fields.0);
        logged().send_modify(|n| *n += 1);
    }
}

/// Installs the warning log (once per test binary).
pub fn capture_warnings() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(WarningLog);
        tracing::subscriber::set_global_default(subscriber).expect("a global subscriber");
    });
}

/// The warnings logged so far that contain `needle`.
pub fn warnings_containing(needle: &str) -> Vec<String> {
    WARNINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|w| w.contains(needle))
        .cloned()
        .collect()
}

/// The warnings logged so far that name `peer` (the server's `peer` field).
pub fn warnings_about(peer: SocketAddr) -> Vec<String> {
    warnings_containing(&format!("peer={peer} "))
}

/// Waits until a warning containing `needle` has been logged; returns it.
pub async fn warning_containing(needle: &str) -> String {
    let mut changes = logged().subscribe();
    within(&format!("a warning containing {needle:?}"), async {
        loop {
            if let Some(found) = warnings_containing(needle).pop() {
                return found;
            }
            changes.changed().await.expect("the counter lives forever");
        }
    })
    .await
}
