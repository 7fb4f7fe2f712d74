//! A `tracing` span per call, read back from a subscriber that keeps every span it sees.
//!
//! This test has a binary of its own. `tracing` caches, for the whole process, whether each
//! span or event site is wanted, and the thread that reaches a site first decides; the
//! subscriber here is set for this test's thread only. A test beside it that makes calls with
//! no subscriber (as `telemetry.rs`'s metrics tests do) could reach the call span's site first,
//! while this thread installs its subscriber, and have it cached as unwanted: this test then
//! saw no span (it failed so once in a full run).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{TestServer, within};
use rpc_core::{Client, Server, remote};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[remote]
trait Logger {
    /// Logs a line from inside the handler and answers `n`.
    async fn remote_note(&self, n: u64) -> u64;
}

struct Notes;

impl Logger for Notes {
    async fn remote_note(&self, n: u64) -> u64 {
        tracing::info!(n, "inside the handler");
        n
    }
}

/// Every span the subscriber saw, with its fields as text, once it closed; and the span each
/// event was in.
#[derive(Clone, Default)]
struct Captured {
    closed: Arc<Mutex<Vec<SpanFields>>>,
    /// Each event's message, and the fields of the span it was in.
    events: Arc<Mutex<Vec<Event>>>,
}

/// An event's message, and the fields of the span it was in.
type Event = (String, Option<SpanFields>);

/// A span's fields as text, by name.
type SpanFields = BTreeMap<String, String>;

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        fields
            .0
            .insert("name".into(), attrs.metadata().name().into());
        fields
            .0
            .insert("target".into(), attrs.metadata().target().into());
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut extensions = span.extensions_mut();
        values.record(extensions.get_mut::<Fields>().unwrap());
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let span = ctx
            .event_span(event)
            .map(|span| span.extensions().get::<Fields>().unwrap().0.clone());
        self.events.lock().unwrap().push((message, span));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let fields = span.extensions().get::<Fields>().unwrap().0.clone();
        self.closed.lock().unwrap().push(fields);
    }
}

/// A call is a span on each side, with the method, the object, the peer and the request id,
/// and its outcome and duration when it closes; the handler runs inside the served call's.
#[tokio::test]
async fn every_call_is_a_span_on_each_side() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone().with_filter(
        tracing_subscriber::EnvFilter::new("rpc_core::call=debug,call_spans=info"),
    ));
    let _default = tracing::subscriber::set_default(subscriber);

    let server = Server::bind("127.0.0.1:0", LoggerRef::new(Notes))
        .await
        .unwrap();
    let server = TestServer::serve(server);
    let addr = server.addr;
    let client = Client::connect(addr).await.unwrap();
    let logger: LoggerRef = client.root().await.unwrap();
    assert_eq!(logger.note(41).await.unwrap(), 41);
    // The served call's span closes once its task lets go of it.
    within("the served call's span to close", async {
        while captured.closed.lock().unwrap().len() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;

    let closed = captured.closed.lock().unwrap().clone();
    let side = |direction: &str| {
        closed
            .iter()
            .find(|span| span.get("direction").map(String::as_str) == Some(direction))
            .unwrap_or_else(|| panic!("no {direction} span in {closed:?}"))
            .clone()
    };
    let (outgoing, incoming) = (side("outgoing"), side("incoming"));
    for span in [&outgoing, &incoming] {
        assert_eq!(span["name"], "call", "{span:?}");
        assert_eq!(span["target"], "rpc_core::call", "{span:?}");
        assert_eq!(span["method"], "note", "{span:?}");
        assert_eq!(span["object"], "0", "the root object: {span:?}");
        assert_eq!(span["outcome"], "ok", "{span:?}");
        let seconds: f64 = span["seconds"].parse().unwrap();
        assert!((0.0..20.0).contains(&seconds), "{span:?}");
        assert!(span["peer"].contains("127.0.0.1:"), "{span:?}");
    }
    assert_eq!(
        outgoing["id"], incoming["id"],
        "one request id on both sides"
    );
    assert_eq!(incoming["interface"], "Logger");
    assert_eq!(outgoing["peer"], addr.to_string());

    let events = captured.events.lock().unwrap().clone();
    let (_, span) = events
        .iter()
        .find(|(message, _)| message == "inside the handler")
        .expect("the handler's line");
    let span = span.as_ref().expect("logged inside a span");
    assert_eq!(span["direction"], "incoming");
    assert_eq!(span["method"], "note");

    drop(logger);
    client.close();
    server.stop().await;
}
