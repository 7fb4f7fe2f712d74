//! The demo end to end, as separate processes over TLS with logins: a broker (served over
//! TLS by the test itself), `calc-worker`s logged in to it with credentials from a file or
//! the environment, and `calc-client` running a job through it while one worker is killed;
//! and the no-argument `calc-client`, which runs everything in one process.

mod common;

use std::time::{Duration, Instant};

use broker_server::Role;
use common::{
    BIG_JOB, BIG_JOB_TOTAL, BrokerProc, Credentials, On, PATIENCE, Proc, TestBroker, calc_client,
    lost_worker_row, progress, start_big_job, start_worker, total,
};

/// Kill a worker with SIGKILL mid-job: the job still completes with the right total, and
/// the broker stops listing (so stops handing out) the dead worker within a second. Workers
/// 1 and 2 read their credentials from files, worker 3 and the front end from the
/// environment.
#[test]
fn a_worker_killed_mid_job_is_dropped_by_the_broker_and_the_job_completes() {
    let broker = TestBroker::start();
    let mut workers: Vec<(Proc, String)> = (1..=3)
        .map(|id| {
            let login = broker.add_user(&format!("worker-{id}"), Role::Worker);
            if id == 3 {
                start_worker(id, 1, Credentials::Env(&login))
            } else {
                let file = login.write_file(broker.dir.path());
                start_worker(id, 1, Credentials::File(&file))
            }
        })
        .collect();
    broker.wait_until(PATIENCE, |ids| ids.len() == 3);
    let front_end = broker.add_user("front-end", Role::FrontEnd);

    let mut client = Proc::spawn_with_env(
        "calc-client",
        &calc_client(),
        &[&BIG_JOB[..], &["--log-level", "info"]].concat(),
        &front_end.env(),
    );
    let done = client.wait_for(PATIENCE, |line| progress(line).filter(|&done| done >= 5));
    assert!(done < 150, "the job is nearly over already: make it bigger");

    let (victim, victim_url) = &mut workers[1];
    let killed = Instant::now(); // before SIGKILL and reaping: the measure is conservative
    victim.kill();
    let gone = broker.wait_until(Duration::from_secs(5), |ids| {
        !ids.iter().any(|id| id == "worker-2/2")
    });
    let since_kill = killed.elapsed();
    println!(
        "the broker dropped the killed worker {gone:?} after waiting began ({since_kill:?} after the kill)"
    );
    assert!(
        since_kill < Duration::from_secs(1),
        "the broker listed the killed worker for {since_kill:?}"
    );

    let status = client.wait_exit(PATIENCE * 2);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(BIG_JOB_TOTAL), "{}", client.log);
    let row = lost_worker_row(&client, victim_url);
    assert!(
        !row.contains("connect again"),
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
    assert!(
        !client.log.contains(&front_end.password),
        "the password was printed:\n{}",
        client.log
    );

    // The survivors are still queued.
    assert_eq!(broker.worker_ids().len(), 2);
}

/// Kill the broker (the real `broker-server`) with SIGKILL mid-job and start it again on the
/// same port with the same data directory: the front end says it lost the broker, keeps
/// its workers' connections, logs in again once the broker is back, and the job completes
/// with the right total; the workers join the new broker by themselves.
#[test]
fn the_front_end_survives_a_broker_restart_mid_job() {
    let mut broker = BrokerProc::new();
    let worker_files: Vec<_> = (1..=2)
        .map(|id| broker.add_user(&format!("worker-{id}"), "worker"))
        .collect();
    let front_end = broker.add_user("front-end", "front-end");
    broker.start();
    let _workers: Vec<(Proc, String)> = worker_files
        .iter()
        .zip(1..)
        .map(|(file, id)| start_worker(id, 2, Credentials::File(file)))
        .collect();
    broker.wait_for_log("worker joined", 2);

    let mut client = start_big_job(&On::ThisHost, &front_end);

    broker.kill();
    client.wait_for_log(PATIENCE, "lost the broker at", 1);
    broker.start();

    let status = client.wait_exit(PATIENCE * 2);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(BIG_JOB_TOTAL), "{}", client.log);
    assert_eq!(
        client.log_lines("lost the broker at"),
        1,
        "said once:\n{}",
        client.log
    );
    assert_eq!(
        client.log_lines("logged in to the broker at"),
        1,
        "{}",
        client.log
    );
    assert!(
        !client.log.contains(" is gone ("),
        "no worker was lost:\n{}",
        client.log
    );
}

/// `calc-client --credentials FILE` logs in with the file's credentials and runs the job on
/// the broker's worker (which reads its own from the environment).
#[test]
fn calc_client_reads_its_credentials_from_a_file() {
    let broker = TestBroker::start();
    let worker_login = broker.add_user("worker-4", Role::Worker);
    let (_worker, _) = start_worker(4, 2, Credentials::Env(&worker_login));
    broker.wait_until(PATIENCE, |ids| ids == ["worker-4/4"]);
    let file = broker
        .add_user("front-end", Role::FrontEnd)
        .write_file(broker.dir.path());
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &[
            "--credentials",
            file.to_str().unwrap(),
            "--limit",
            "1000000",
            "--progress",
            "quiet",
        ],
    );
    let status = client.wait_exit(PATIENCE);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(78_498), "{}", client.log);
}

/// A login the broker refuses, a login of the wrong role, and the old `--broker` option:
/// each fails at once, saying what to do.
#[test]
fn calc_client_with_a_bad_login_says_what_to_do() {
    let broker = TestBroker::start();
    let mut wrong_password = broker.add_user("front-end", Role::FrontEnd);
    wrong_password.password.push('x');
    let worker_login = broker.add_user("worker-5", Role::Worker);
    /// The arguments, the environment, and what the error must say.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        (&[], &wrong_password.env(), "wrong user name or password"),
        (&[], &worker_login.env(), "log in as a front end"),
        (&["--broker", "127.0.0.1:1"], &[], "--broker is gone"),
    ];
    for (args, env, expected) in cases {
        let mut client = Proc::spawn_with_env("calc-client", &calc_client(), args, env);
        let status = client.wait_exit(PATIENCE);
        assert!(!status.success(), "calc-client succeeded:\n{}", client.log);
        assert!(
            client.log.contains(expected),
            "expected {expected:?} in:\n{}",
            client.log
        );
    }
}

/// `calc-client` with no arguments: a broker and three workers in its own process, over TLS
/// with logins, the default job (primes below 20 million), the table, `total: 1270607`,
/// exit 0.
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
            assert!(!row.contains("pbrs://"), "a URL in the report: {row:?}");
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
    let broker = TestBroker::start();
    let file = broker
        .add_user("worker-7", Role::Worker)
        .write_file(broker.dir.path());
    let (mut worker, _) = start_worker(7, 1, Credentials::File(&file));
    broker.wait_until(PATIENCE, |ids| ids == ["worker-7/7"]);
    worker.signal("TERM");
    let status = worker.wait_exit(PATIENCE);
    assert!(
        status.success(),
        "calc-worker after SIGTERM: {status}\n{}",
        worker.log
    );
    assert!(broker.worker_ids().is_empty());
}

/// A worker that freezes (SIGSTOP) without closing its connection is dropped by the broker
/// once keepalive gives up on it: `--keepalive-interval` + `--keepalive-timeout` after the
/// last frame it sent.
#[cfg(unix)]
#[test]
fn the_broker_drops_a_frozen_worker_once_keepalive_gives_up() {
    let mut broker =
        BrokerProc::new().args(&["--keepalive-interval", "1", "--keepalive-timeout", "2"]);
    let file = broker.add_user("worker-8", "worker");
    broker.start();
    let (worker, _) = start_worker(8, 1, Credentials::File(&file));
    broker.wait_for_log("worker joined", 1);
    worker.signal("STOP");
    let stopped = Instant::now();
    let left = broker.wait_for_worker_left();
    let after = stopped.elapsed();
    println!("the broker dropped the frozen worker {after:?} after SIGSTOP");
    assert!(
        after < Duration::from_secs(20),
        "the broker's default keepalive (30 s + 20 s) rather than 1 s + 2 s?"
    );
    assert!(
        left.contains("worker-8/8") && left.contains("keepalive"),
        "{left}"
    );
    // Dropping `worker` kills it (SIGKILL ends a stopped process too).
}
