//! What a connection tells an operator: the `pbrs_*` metrics through the `metrics` facade (read
//! back from a real Prometheus recorder's text). The `tracing` span per call is tested in
//! `call_spans.rs`, a test binary of its own (it says why).
//!
//! Each test runs on a current-thread runtime with the recorder set for its thread only, so
//! that tests running side by side do not see each other's calls.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestServer, within};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use rpc_core::{CallError, Client, Config, RemoteErrorKind, Server, remote, telemetry};

/// The series of a rendered Prometheus text, by name and labels as rendered.
fn series(recorder: &PrometheusRecorder) -> HashMap<String, f64> {
    let text = recorder.handle().render();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("a series line has a value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn calls(direction: &str, method: &str, outcome: &str) -> String {
    format!(
        "{}{{direction=\"{direction}\",method=\"{method}\",outcome=\"{outcome}\"}}",
        telemetry::CALLS_TOTAL
    )
}

/// Waits (yielding to the connection's tasks, up to a generous bound) until `done` holds for
/// the recorder's series; panics with them otherwise.
async fn until(
    recorder: &PrometheusRecorder,
    what: &str,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while !done(&series(recorder)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if waited.is_err() {
        panic!(
            "{what}: not seen in 20 s; the series were:\n{}",
            recorder.handle().render()
        );
    }
}

#[tokio::test]
async fn calls_connections_and_bytes_are_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, probe) = TestServer::calc(1).await;
    let (client, calc) = server.client().await;
    let value = series(&recorder);
    assert_eq!(
        value[telemetry::CONNECTIONS],
        2.0,
        "the client's and the server's ends"
    );

    let calls_began = std::time::Instant::now();
    for i in 0..3 {
        assert_eq!(calc.calculate(i, 1).await.unwrap(), (i + 1, 1));
    }
    let calls_took = calls_began.elapsed().as_secs_f64();
    // An application's panic, a method the object does not have, a deadline that passes.
    assert!(calc.panic(false).await.is_err());
    let root = client.root_object();
    let missing = root.call_remote::<_, ()>("no_such_method", ()).await;
    common::assert_remote(missing, RemoteErrorKind::NoSuchMethod);
    let late = calc.with_timeout(Duration::from_millis(50)).wait(7).await;
    assert!(late.unwrap_err().is_timeout());

    // Every call made has ended here; a served one is counted as its answer goes out.
    let value = series(&recorder);
    assert_eq!(value[&calls("outgoing", "calculate", "ok")], 3.0);
    assert_eq!(value[&calls("incoming", "calculate", "ok")], 3.0);
    assert_eq!(value[&calls("outgoing", "panic", "error")], 1.0);
    assert_eq!(value[&calls("incoming", "panic", "error")], 1.0);
    assert_eq!(value[&calls("outgoing", "no_such_method", "error")], 1.0);
    assert_eq!(value[&calls("incoming", "unknown", "error")], 1.0);
    assert_eq!(value[&calls("outgoing", "wait", "timeout")], 1.0);
    let seconds = format!(
        "{}_count{{direction=\"incoming\",method=\"calculate\"}}",
        telemetry::CALL_SECONDS
    );
    assert_eq!(value[&seconds], 3.0);
    // Each call took some time, by its caller's clock (sent to answered, over loopback), all
    // three of them within the loop that made them: seconds, not another unit.
    let took = format!(
        "{}_sum{{direction=\"outgoing\",method=\"calculate\"}}",
        telemetry::CALL_SECONDS
    );
    let took = value[&took];
    assert!(
        took > 0.0 && took <= calls_took,
        "{took} s of {calls_took} s"
    );
    // The served `wait` ends when its deadline passes or its cancel arrives, whichever first.
    until(&recorder, "the served `wait` ended", |value| {
        let timeout = value.get(&calls("incoming", "wait", "timeout"));
        let cancelled = value.get(&calls("incoming", "wait", "cancelled"));
        timeout.or(cancelled) == Some(&1.0)
    })
    .await;
    probe.open_gate();
    // A last round trip: whatever the server sent before its answer (the `wait`'s error
    // answer, if its deadline passed there first) has been read when it arrives.
    assert_eq!(calc.calculate(0, 0).await.unwrap(), (0, 1));

    let received = value[telemetry::RECEIVED_BYTES];
    assert!(received > 0.0, "{received}");
    drop((calc, root));
    client.close();
    until(&recorder, "both ends closed", |value| {
        value[telemetry::CONNECTIONS] == 0.0
    })
    .await;
    // Both ends count in this recorder: every byte one sent, the other read.
    let value = series(&recorder);
    assert_eq!(
        value[telemetry::SENT_BYTES],
        value[telemetry::RECEIVED_BYTES]
    );
    server.stop().await;
}

/// A call given up on while it runs (its future dropped) counts as `cancelled` on both sides:
/// the caller's as it drops, the served one as its cancel arrives.
#[tokio::test]
async fn a_call_given_up_counts_as_cancelled_on_both_sides() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, mut probe) = TestServer::calc(1).await;
    let (_client, calc) = server.client().await;
    let mut call = Box::pin(calc.wait(1));
    assert!(
        futures::poll!(call.as_mut()).is_pending(),
        "the gate is shut"
    );
    probe.started(1).await;
    drop(call);
    until(&recorder, "both ends of the call cancelled", |value| {
        value.get(&calls("outgoing", "wait", "cancelled")) == Some(&1.0)
            && value.get(&calls("incoming", "wait", "cancelled")) == Some(&1.0)
    })
    .await;
    server.stop().await;
}

/// A call made and dropped before its first poll never happened: it is counted nowhere, not
/// even as `cancelled`; the call made after it is counted once.
#[tokio::test]
async fn a_call_dropped_unpolled_is_not_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, _probe) = TestServer::calc(1).await;
    let (_client, calc) = server.client().await;
    drop(calc.calculate(1, 2));
    assert_eq!(within("a call", calc.calculate(3, 4)).await.unwrap().0, 7);
    until(&recorder, "the call counted at both ends", |value| {
        value.get(&calls("outgoing", "calculate", "ok")) == Some(&1.0)
            && value.get(&calls("incoming", "calculate", "ok")) == Some(&1.0)
    })
    .await;
    let value = series(&recorder);
    assert_eq!(
        value.get(&calls("outgoing", "calculate", "cancelled")),
        None,
        "the call dropped unpolled counted as cancelled"
    );
    server.stop().await;
}

/// A peer that calls methods by names it makes up cannot make the recorder keep one series
/// per name: a served call of a name the object lacks counts as `unknown`.
#[tokio::test]
async fn a_peer_cannot_grow_the_series_with_made_up_method_names() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, _probe) = TestServer::calc(1).await;
    let (client, _calc) = server.client().await;
    let root = client.root_object();
    for i in 0..50 {
        let name = format!("made_up_{i}");
        let _ = root.call_remote::<_, ()>(&name, ()).await;
    }
    let value = series(&recorder);
    let incoming: Vec<&String> = value
        .keys()
        .filter(|k| k.starts_with(telemetry::CALLS_TOTAL) && k.contains("\"incoming\""))
        .collect();
    assert_eq!(incoming, [&calls("incoming", "unknown", "error")]);
    assert_eq!(value[&calls("incoming", "unknown", "error")], 50.0);
    server.stop().await;
}

#[remote]
trait Logger {
    /// Answers a value that cannot be encoded.
    async fn remote_broken(&self) -> Broken;
}

struct Notes;

impl Logger for Notes {
    async fn remote_broken(&self) -> Broken {
        Broken
    }
}

/// A value whose encoding fails.
struct Broken;

impl serde::Serialize for Broken {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value cannot be encoded"))
    }
}

impl<'de> serde::Deserialize<'de> for Broken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Broken)
    }
}

/// A served call whose answer cannot be encoded is answered with an error, and counted as
/// one on both sides, not as `ok`.
#[tokio::test]
async fn an_answer_that_cannot_be_encoded_counts_as_an_error() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = Server::bind("127.0.0.1:0", LoggerRef::new(Notes))
        .await
        .unwrap();
    let server = TestServer::serve(server);
    let client = Client::connect(server.addr).await.unwrap();
    let logger: LoggerRef = client.root().await.unwrap();
    let e = logger.broken().await.err().expect("an error answer");
    assert_eq!(e.remote_kind(), Some(RemoteErrorKind::BadAnswer), "{e}");
    let value = series(&recorder);
    assert_eq!(value.get(&calls("incoming", "broken", "ok")), None);
    assert_eq!(value[&calls("incoming", "broken", "error")], 1.0);
    assert_eq!(value[&calls("outgoing", "broken", "error")], 1.0);
    client.close();
    server.stop().await;
}

/// A call refused before it runs (here: the connection's calls in flight are at their limit)
/// is counted `refused` on both sides.
#[tokio::test]
async fn a_call_refused_as_overloaded_is_counted_refused() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let config = Config::default().max_in_flight_calls(1);
    let (server, probe) = TestServer::calc_with(1, config).await;
    let (_client, calc) = server.client().await;
    // One call holds the only slot; the next is refused as overloaded.
    let holding = tokio::spawn({
        let calc = calc.clone();
        async move { calc.wait(1).await }
    });
    let mut probe = probe;
    probe.started(1).await;
    let refused = calc.calculate(1, 2).await;
    assert!(matches!(
        refused,
        Err(CallError::Remote {
            kind: RemoteErrorKind::Overloaded,
            ..
        })
    ));
    probe.open_gate();
    within("the held call", holding).await.unwrap().unwrap();
    let value = series(&recorder);
    assert_eq!(value[&calls("incoming", "calculate", "refused")], 1.0);
    assert_eq!(value[&calls("outgoing", "calculate", "refused")], 1.0);
    server.stop().await;
}
