//! Test support for the broker's HTTP side: a minimal HTTP/1.0 GET over real loopback TCP
//! (HTTP/1.0, so the body is never chunked and ends with the connection), a parser that
//! checks the Prometheus text format line by line, and a bounded poll.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any wait on the HTTP side may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// An HTTP response: status code, head (status line and headers) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` from `addr`, within [`PATIENCE`].
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(PATIENCE, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {path} from {addr}: no answer in {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"));
    let text = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Prometheus text, parsed: each sample as `name{labels}` (labels as written) → value, and
/// each `# TYPE` as name → type.
#[derive(Debug, Default)]
pub struct Metrics {
    pub samples: HashMap<String, f64>,
    pub types: HashMap<String, String>,
}

impl Metrics {
    /// The value of the sample `key` (`name` or `name{labels}`), 0 when absent (a metric
    /// never recorded is not rendered).
    pub fn value(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `labels` is `k="v",k="v"`.
fn check_labels(labels: &str, line: &str) {
    for pair in labels.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("a label without '=' in {line:?}"));
        assert!(is_name(key), "bad label name {key:?} in {line:?}");
        assert!(
            value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
            "unquoted label value in {line:?}"
        );
    }
}

/// Parses `text` as the Prometheus text format, panicking on the first line that is not
/// `# HELP name ...`, `# TYPE name type` or `name{labels} value`.
pub fn parse_prometheus(text: &str) -> Metrics {
    let mut metrics = Metrics::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            assert!(is_name(name), "bad metric name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            metrics.types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            assert!(is_name(name), "bad metric name in {line:?}");
            continue;
        }
        assert!(!line.starts_with('#'), "an unknown comment line {line:?}");
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("a value that is no number in {line:?}")),
        };
        let name = match key.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                check_labels(labels, line);
                name
            }
            None => key,
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        metrics.samples.insert(key.to_owned(), value);
    }
    metrics
}

/// Calls `check` until it returns `Some`, for at most [`PATIENCE`] (then panics saying
/// `what`), yielding to the runtime between tries.
pub async fn poll<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one user of these brokers, an admin (may join workers and ask for them).
pub const ADMIN: &str = "admin";
const PASSWORD: &str = "admin's password";

/// A plaintext broker on a free loopback port, with its HTTP side on another, serving
/// `metrics` at `/metrics`.
pub async fn spawn_broker(
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> broker_server::RunningBroker {
    use broker_server::{Access, BrokerService, HttpSide, Role, Users};
    let users = Users::new();
    users.add(ADMIN, Role::Admin, PASSWORD).unwrap();
    let service = BrokerService::new();
    let listener = broker_server::bind("127.0.0.1:0").await.unwrap();
    let http_listener = broker_server::bind("127.0.0.1:0").await.unwrap();
    let http = HttpSide::new(http_listener, service.clone(), metrics);
    broker_server::spawn_with_http(listener, service, Access::plaintext(users), Some(http)).unwrap()
}

/// A new connection to `broker`, logged in as the admin.
pub async fn log_in(broker: &broker_server::RunningBroker) -> broker_server::BrokerRef {
    let credentials = broker_server::BrokerCredentials::new(broker.location(), ADMIN, PASSWORD);
    tokio::time::timeout(PATIENCE, credentials.connect())
        .await
        .expect("log in in time")
        .expect("log in")
}

/// Joins worker `id` with `capacity` over a connection of its own, which is the worker's
/// life: drop the returned reference and the worker leaves.
pub async fn join(
    broker: &broker_server::RunningBroker,
    id: &str,
    capacity: u32,
) -> broker_server::BrokerRef {
    use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};
    let worker = log_in(broker).await;
    let update = WorkerUpdate {
        worker: WorkerId::from(id),
        seq: 1,
        change: Change::Added {
            addr: format!("{id}.test:8992"),
            capacity,
            load: 0,
        },
    };
    let applied = worker.join(update).await.unwrap().unwrap();
    assert_eq!(applied, Applied::Added);
    worker
}
