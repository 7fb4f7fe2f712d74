//! `/metrics` on the broker's HTTP side: the Prometheus text format, whose values move as
//! workers join, are handed out and leave, over real loopback TCP with real pbrs clients.
//!
//! One test only in this file: the metrics recorder is global to the process, and another
//! broker of the same test binary would move the same values.

#[path = "support/http.rs"]
mod support;

use support::{PATIENCE, get, join, log_in, parse_prometheus, poll, spawn_broker};

const IDLE: &str = "pbrs_broker_workers{state=\"idle\"}";
const WORKING: &str = "pbrs_broker_workers{state=\"working\"}";
const FULL: &str = "pbrs_broker_workers{state=\"full\"}";
const HANDED_OUT: &str = "pbrs_broker_handed_out_total";
const NEXT_COUNT: &str = "pbrs_broker_next_worker_seconds_count";
const CONNECTIONS: &str = "pbrs_connections";

/// The series of calls of `method` the broker served that ended with `outcome`.
fn served(method: &str, outcome: &str) -> String {
    format!("pbrs_calls_total{{direction=\"incoming\",method=\"{method}\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn metrics_parse_and_move_with_joins_hand_outs_and_leaves() {
    let handle = broker_server::telemetry::install_prometheus().unwrap();
    assert!(
        broker_server::telemetry::install_prometheus().is_err(),
        "a second recorder is refused"
    );
    let broker = spawn_broker(Some(handle)).await;
    let http = broker.http_addr().unwrap();
    let scrape = || async move {
        let response = get(http, "/metrics").await;
        assert_eq!(response.status, 200, "{response:?}");
        assert!(response.head.contains("text/plain"), "{}", response.head);
        parse_prometheus(&response.body)
    };

    let worker = join(&broker, "w1", 2).await;
    let metrics = scrape().await;
    assert_eq!(metrics.value(IDLE), 1.0, "{metrics:?}");
    assert_eq!(
        metrics.types.get("pbrs_broker_workers").map(String::as_str),
        Some("gauge")
    );

    let front_end = log_in(&broker).await;
    for handed in 1..=3 {
        let next = front_end.next_worker().await.unwrap().unwrap().unwrap();
        assert_eq!(next.worker.as_str(), "w1");
        let metrics = scrape().await;
        assert_eq!(metrics.value(HANDED_OUT), f64::from(handed), "{metrics:?}");
        assert_eq!(metrics.value(NEXT_COUNT), f64::from(handed), "{metrics:?}");
    }
    let metrics = scrape().await;
    assert_eq!(
        metrics.types.get(HANDED_OUT).map(String::as_str),
        Some("counter")
    );
    // rpc-core's own metrics, in the same recorder: the broker's connections and calls (and,
    // this test's clients being in the same process, their ends of them too).
    assert_eq!(
        metrics.value(CONNECTIONS),
        4.0,
        "two connections, both ends"
    );
    assert_eq!(
        metrics.value(&served("next_worker", "ok")),
        3.0,
        "{metrics:?}"
    );
    assert_eq!(
        metrics.types.get("pbrs_call_seconds").map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        metrics.types.get("pbrs_calls_total").map(String::as_str),
        Some("counter")
    );
    assert!(metrics.value("pbrs_received_bytes_total") > 0.0);
    assert!(metrics.value("pbrs_sent_bytes_total") > 0.0);
    assert_eq!(
        metrics
            .types
            .get("pbrs_broker_next_worker_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        metrics.value("pbrs_broker_next_worker_seconds_bucket{le=\"+Inf\"}"),
        3.0,
        "{metrics:?}"
    );
    // Capacity 2, handed out 3 times: full.
    assert_eq!(
        (
            metrics.value(IDLE),
            metrics.value(WORKING),
            metrics.value(FULL)
        ),
        (0.0, 0.0, 1.0)
    );

    // A second worker, then the first one's connection drops: it leaves the gauges.
    let _second = join(&broker, "w2", 4).await;
    drop(worker);
    let metrics = poll("w1 leaving the gauges", || async {
        let metrics = scrape().await;
        (metrics.value(FULL) == 0.0).then_some(metrics)
    })
    .await;
    assert_eq!(metrics.value(IDLE), 1.0, "{metrics:?}");
    assert_eq!(metrics.value(HANDED_OUT), 3.0, "a counter never goes down");

    assert_eq!(get(http, "/healthz").await.status, 200);
    tokio::time::timeout(PATIENCE, broker.shutdown())
        .await
        .expect("shut down in time");
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "the HTTP side stops with the broker"
    );
}
