//! The demo end to end, as separate processes: a `broker-server`, three `calc-worker`s
//! joined to it, and `calc-client` running a job through the broker while one worker is
//! killed; and the no-argument `calc-client`, which runs everything in one process.

mod common;

use std::time::{Duration, Instant};

use common::{
    BrokerClient, PATIENCE, Proc, calc_client, progress, start_broker, start_worker, total,
};

/// Kill a worker with SIGKILL mid-job: the job still completes with the right total, and
/// the broker stops listing (so stops handing out) the dead worker within a second.
#[test]
fn a_worker_killed_mid_job_is_dropped_by_the_broker_and_the_job_completes() {
    let (_broker, broker_addr) = start_broker();
    let mut workers: Vec<(Proc, String)> = (1..=3)
        .map(|id| start_worker(id, 1, Some(&broker_addr)))
        .collect();
    let broker = BrokerClient::connect(&broker_addr);
    broker.wait_until(PATIENCE, |ids| ids.len() == 3);

    // π(2·10^7) in 200 chunks: several seconds in a debug build.
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &[
            "--broker",
            &broker_addr,
            "--limit",
            "20000000",
            "--chunk",
            "100000",
            "--progress",
            "lines",
            "--log-level",
            "info",
        ],
    );
    let done = client.wait_for(PATIENCE, |line| progress(line).filter(|&done| done >= 5));
    assert!(done < 150, "the job is nearly over already: make it bigger");

    let (victim, victim_addr) = &mut workers[1];
    let killed = Instant::now(); // before SIGKILL and reaping: the measure is conservative
    victim.kill();
    let gone = broker.wait_until(Duration::from_secs(5), |ids| {
        !ids.iter().any(|id| id == "2")
    });
    let since_kill = killed.elapsed();
    println!(
        "the broker dropped the killed worker {gone:?} after polling began ({since_kill:?} after the kill)"
    );
    assert!(
        since_kill < Duration::from_secs(1),
        "the broker listed the killed worker for {since_kill:?}"
    );

    let status = client.wait_exit(PATIENCE * 2);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(1_270_607), "{}", client.log);
    let row = client
        .stdout
        .iter()
        .find(|l| l.contains(victim_addr.as_str()))
        .unwrap_or_else(|| panic!("no table row for the killed worker:\n{}", client.log));
    assert!(
        row.contains("lost:"),
        "the killed worker's row: {row}\n{}",
        client.log
    );
    let progress_lines = client
        .stdout
        .iter()
        .filter(|l| progress(l).is_some())
        .count();
    assert!(
        progress_lines >= 200,
        "expected a progress line per chunk:\n{}",
        client.log
    );

    // The survivors are still queued and the broker still answers.
    assert_eq!(broker.workers().len(), 2);
}

/// `calc-client` with no arguments: a broker and three workers in its own process, the
/// default job (primes below 20 million), the table, `total: 1270607`, exit 0.
#[test]
fn calc_client_without_arguments_runs_the_whole_demo_in_process() {
    let mut client = Proc::spawn("calc-client", &calc_client(), &[]);
    let status = client.wait_exit(PATIENCE * 2);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(1_270_607), "{}", client.log);
    let header = client
        .stdout
        .iter()
        .position(|l| l.starts_with("worker") && l.contains("address") && l.contains("busy"))
        .unwrap_or_else(|| panic!("no table:\n{}", client.log));
    let rows = &client.stdout[header + 1..header + 4];
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|row| {
            assert!(row.contains("127.0.0.1:"), "row {row:?} in\n{}", client.log);
            row.split_whitespace().next().unwrap_or_default()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["1", "2", "3"], "{}", client.log);
}

/// SIGTERM stops a worker gracefully: it leaves the broker and exits 0.
#[cfg(unix)]
#[test]
fn a_worker_stopped_with_sigterm_leaves_the_broker_and_exits_0() {
    let (_broker, broker_addr) = start_broker();
    let (mut worker, _) = start_worker(7, 1, Some(&broker_addr));
    let broker = BrokerClient::connect(&broker_addr);
    broker.wait_until(PATIENCE, |ids| ids == ["7"]);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let status = worker.wait_exit(PATIENCE);
    assert!(
        status.success(),
        "calc-worker after SIGTERM: {status}\n{}",
        worker.log
    );
    assert!(broker.workers().is_empty());
}
