//! The broker's HTTP side over real loopback TCP, with real pbrs clients: `/healthz`,
//! `/status.json` as workers join, are handed out and leave, the status page itself (built
//! in, nothing fetched from elsewhere), `/metrics` without a recorder, and the page in a real
//! browser (headless Chromium, when installed).

#[path = "support/http.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use support::{PATIENCE, get, join, log_in, poll, spawn_broker};

/// `/status.json`, parsed.
async fn status(http: std::net::SocketAddr) -> Value {
    let response = get(http, "/status.json").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response.head.contains("application/json"),
        "{}",
        response.head
    );
    serde_json::from_str(&response.body).expect("JSON")
}

/// The ids of the workers in `status`, in queue order.
fn ids(status: &Value) -> Vec<String> {
    status["workers"]
        .as_array()
        .expect("a list of workers")
        .iter()
        .map(|w| w["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn healthz_answers_and_metrics_without_a_recorder_say_so() {
    let broker = spawn_broker(None).await;
    let http = broker.http_addr().unwrap();
    let health = get(http, "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let metrics = get(http, "/metrics").await;
    assert_eq!(metrics.status, 404);
    assert!(
        metrics.body.contains("without a Prometheus recorder"),
        "{metrics:?}"
    );
    assert_eq!(get(http, "/nothing-here").await.status, 404);
    broker.shutdown().await;
}

#[tokio::test]
async fn status_json_lists_the_workers_in_queue_order_as_they_come_and_go() {
    let broker = spawn_broker(None).await;
    let http = broker.http_addr().unwrap();
    assert_eq!(ids(&status(http).await), Vec::<String>::new());

    let w1 = join(&broker, "w1", 1).await;
    let _w2 = join(&broker, "w2", 3).await;
    let now = status(http).await;
    assert_eq!(ids(&now), ["w2", "w1"], "most spare capacity first");
    let w2 = &now["workers"][0];
    assert_eq!(w2["addr"], "w2.test:8992");
    assert_eq!(
        (w2["capacity"].as_u64(), w2["load"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        (w2["spare"].as_i64(), w2["state"].as_str()),
        (Some(3), Some("idle"))
    );
    assert!(w2["updated_ms"].as_u64().unwrap() <= now["now_ms"].as_u64().unwrap());

    let front_end = log_in(&broker).await;
    for _ in 0..3 {
        front_end.next_worker().await.unwrap().unwrap().unwrap();
    }
    let now = status(http).await;
    // w2 goes twice (3 → 2 → 1 spare), then w1 (1 spare, never handed out) once.
    let handed: Vec<_> = now["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap(),
                w["handed_out_total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(handed, [("w2", 2), ("w1", 1)]);
    assert_eq!(now["workers"][1]["state"], "full");
    assert_eq!(now["handed_out_total"], 3);
    let rate = now["hand_outs_per_second"].as_array().unwrap();
    assert_eq!(rate.len(), broker_server::activity::HISTORY_SECONDS);
    assert_eq!(rate.iter().map(|n| n.as_u64().unwrap()).sum::<u64>(), 3);

    drop(w1);
    poll("w1 gone from /status.json", || async {
        (ids(&status(http).await) == ["w2"]).then_some(())
    })
    .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn the_page_is_built_in_and_polls_status_json() {
    let broker = spawn_broker(None).await;
    let page = get(broker.http_addr().unwrap(), "/").await;
    assert_eq!(page.status, 200);
    assert!(page.head.contains("text/html"), "{}", page.head);
    assert!(page.body.contains("/status.json"));
    // Nothing fetched from elsewhere: no external scripts, styles, fonts or images.
    for external in ["src=", "href=", "@import", "url("] {
        assert!(!page.body.contains(external), "the page has {external}");
    }
    broker.shutdown().await;
}

/// Runs `command` to its end within [`PATIENCE`], killing it after that.
fn run_within_patience(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    // Chromium writes little; waiting on it before reading its pipes cannot block it.
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > PATIENCE * 3 {
            let _ = child.kill();
            panic!("chromium still running after {:?}", PATIENCE * 3);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("chromium's output")
}

/// Chromium's headless arguments: no sandbox (tests may run as root), no GPU, and enough
/// virtual time for the page's first poll to come back.
fn chromium(url: &str, extra: &[String]) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!("pbrs-chromium-{}", std::process::id()));
    let output = run_within_patience(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--virtual-time-budget=5000", "--window-size=1100,900"])
            .args(extra)
            .arg(url),
    );
    let _ = std::fs::remove_dir_all(profile);
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_workers_on_the_page() {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !found.is_ok_and(|status| status.success()) {
        println!("skipped: chromium not installed (apt-get install chromium to run this test)");
        return;
    }
    let broker = spawn_broker(None).await;
    let url = format!("http://{}/", broker.http_addr().unwrap());
    let _workers = [
        join(&broker, "calc-1", 4).await,
        join(&broker, "calc-2", 2).await,
        join(&broker, "calc-3", 3).await,
    ];
    let front_end = log_in(&broker).await;
    for _ in 0..5 {
        front_end.next_worker().await.unwrap().unwrap().unwrap();
    }

    let dump_url = url.clone();
    let dom = tokio::task::spawn_blocking(move || chromium(&dump_url, &["--dump-dom".into()]))
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    for id in ["calc-1", "calc-2", "calc-3"] {
        assert!(
            html.contains(&format!("<td class=\"l id\">{id}</td>")),
            "the page does not show {id}:\n{html}"
        );
    }
    assert!(html.contains("calc-1.test:8992"), "{html}");
    assert!(html.contains("<polyline"), "no chart drawn:\n{html}");

    let shot: PathBuf = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("broker-status-page.png");
    let arg = format!("--screenshot={}", shot.display());
    let shot_run = tokio::task::spawn_blocking(move || chromium(&url, &[arg]))
        .await
        .unwrap();
    assert!(shot_run.status.success(), "{shot_run:?}");
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no screenshot at {}", shot.display());
    println!("screenshot of the status page: {}", shot.display());
    broker.shutdown().await;
}
