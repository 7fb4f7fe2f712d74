//! The front end without a broker: `calc-client --workers URL,URL,URL`, with workers that
//! are dead before the job starts or die during it, and plain addresses it refuses.

mod common;

use common::{
    BIG_JOB, Credentials, PATIENCE, Proc, calc_client, host_port, progress, start_worker, total,
};

/// One of three workers is dead before the job starts: connecting to it fails, the other
/// two do all the work.
#[test]
fn a_worker_dead_before_the_job_is_skipped() {
    let mut workers: Vec<(Proc, String)> = (1..=3)
        .map(|id| start_worker(id, 1, Credentials::None))
        .collect();
    workers[0].0.kill();
    let urls: Vec<&str> = workers.iter().map(|(_, url)| url.as_str()).collect();
    let list = urls.join(",");
    let addrs: Vec<String> = urls.iter().map(|url| host_port(url)).collect();
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &["--workers", &list, "--limit", "2000000", "--chunk", "20000"],
    );
    let status = client.wait_exit(PATIENCE);
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(148_933), "{}", client.log);
    let rows: Vec<&String> = addrs
        .iter()
        .map(|addr| {
            client
                .stdout
                .iter()
                .find(|l| l.contains(addr.as_str()))
                .unwrap_or_else(|| panic!("no row for {addr}:\n{}", client.log))
        })
        .collect();
    // Said once, with what to check: not "could not connect: could not connect (...)".
    assert!(rows[0].contains("lost: could not connect: "), "{}", rows[0]);
    assert_eq!(
        rows[0].matches("could not connect").count(),
        1,
        "{}",
        rows[0]
    );
    assert!(rows[0].contains("is the worker running"), "{}", rows[0]);
    assert!(
        client.log.contains(&format!(
            "worker at {} is not used: could not connect",
            addrs[0]
        )),
        "{}",
        client.log
    );
    for row in &rows[1..] {
        assert!(!row.contains("lost"), "{row}");
        let chunks: usize = row.split_whitespace().nth(2).unwrap().parse().unwrap();
        assert!(chunks > 0, "{row}");
    }
}

/// Every worker dead before the job: exit non-zero with "no worker left".
#[test]
fn no_reachable_worker_is_a_clear_error() {
    let (mut worker, url) = start_worker(1, 1, Credentials::None);
    worker.kill();
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &["--workers", &url, "--limit", "100000"],
    );
    let addr = host_port(&url);
    let status = client.wait_exit(PATIENCE);
    assert!(
        !status.success(),
        "calc-client succeeded without workers:\n{}",
        client.log
    );
    assert!(
        client.log.contains("error: no worker left") && client.log.contains(&addr),
        "{}",
        client.log
    );
    assert_eq!(total(&client.stdout), None);
}

/// Both workers die during the job: exit non-zero with "no worker left" and how many chunks
/// were not computed.
#[test]
fn all_workers_dying_mid_job_is_a_clear_error() {
    let mut workers: Vec<(Proc, String)> = (1..=2)
        .map(|id| start_worker(id, 1, Credentials::None))
        .collect();
    let list = format!("{},{}", workers[0].1, workers[1].1);
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &[&["--workers", &list][..], &BIG_JOB].concat(),
    );
    client.wait_for(PATIENCE, |line| progress(line).filter(|&done| done >= 2));
    for (worker, _) in &mut workers {
        worker.kill();
    }
    let status = client.wait_exit(PATIENCE);
    assert!(
        !status.success(),
        "calc-client succeeded without workers:\n{}",
        client.log
    );
    assert!(
        client
            .log
            .contains("error: no worker left: every worker is lost")
            && client.log.contains("chunks not computed"),
        "{}",
        client.log
    );
    // Each loss said in the demo's terms: which worker, what happened, where its chunks go.
    for (_, url) in &workers {
        let gone = format!("({}) is gone (connection lost: ", host_port(url));
        assert!(client.log.contains(&gone), "{gone:?} in\n{}", client.log);
    }
    assert!(
        client.log.contains("its chunks go to the other workers"),
        "{}",
        client.log
    );
    assert!(!client.log.contains("connect again"), "{}", client.log);
}

/// A plain `host:port` is refused at once: workers are reached by their URL only.
#[test]
fn a_plain_worker_address_is_refused_with_what_to_give_instead() {
    let (_worker, url) = start_worker(1, 1, Credentials::None);
    let addr = host_port(&url);
    let mut client = Proc::spawn("calc-client", &calc_client(), &["--workers", &addr]);
    let status = client.wait_exit(PATIENCE);
    assert!(!status.success(), "calc-client succeeded:\n{}", client.log);
    assert!(
        client.log.contains("must start with pbrs://") && client.log.contains("worker url:"),
        "{}",
        client.log
    );
}
