//! The demo across separate hosts: the broker, three workers and the front end each run in a
//! network namespace of their own, linked through a switch (see [`common::netns`]), as if on
//! five machines, over TLS with pinned fingerprints and logins, each listening on its host's
//! address. One worker's link is cut mid-job; its chunks move to the others, and the broker
//! drops it once keepalive notices. Needs root: without it the test says it is skipped.

mod common;

use std::time::Instant;

use common::netns::{Host, Network};
use common::{
    BIG_JOB_TOTAL, BrokerProc, Credentials, PATIENCE, Proc, host_port, lost_worker_row,
    start_big_job, start_worker_on, table_row, total,
};

/// The broker's keepalive in this test, `--keepalive-interval` and `--keepalive-timeout` in
/// seconds: a silent worker is dropped 6 s after its last frame at most (30 s + 20 s by
/// default), and a busy 2-core machine still answers a ping within 4 s.
const BROKER_KEEPALIVE: [&str; 2] = ["2", "4"];

/// Cut worker 2's link once the job is under way: the job still completes with the right
/// total, worker 2's chunks go to the others (it is reported lost, by keepalive), and the
/// broker drops worker 2 (only it) once its keepalive notices.
#[test]
fn the_demo_on_separate_hosts_survives_a_worker_cut_off_mid_job() {
    let mut network = match Network::new() {
        Ok(network) => network,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let broker_host = network.add_host("broker", "10.77.0.1");
    let worker_hosts: Vec<Host> = (1..=3)
        .map(|id| network.add_host(&format!("w{id}"), &format!("10.77.0.1{id}")))
        .collect();
    let front_host = network.add_host("front", "10.77.0.20");

    let keepalive = [
        "--keepalive-interval",
        BROKER_KEEPALIVE[0],
        "--keepalive-timeout",
        BROKER_KEEPALIVE[1],
    ];
    let broker_addr = format!("{}:8990", broker_host.addr);
    let mut broker = BrokerProc::on(broker_host.on(), &broker_addr).args(&keepalive);
    let worker_files: Vec<_> = (1..=3)
        .map(|id| broker.add_user(&format!("worker-{id}"), "worker"))
        .collect();
    let front_end = broker.add_user("front-end", "front-end");
    broker.start();
    let broker_pid = broker.proc.as_ref().expect("started").id();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{broker_pid}/comm")).ok(),
        Some("broker-server\n".to_owned()),
        "`ip netns exec` should have become the broker: killing it must kill the broker"
    );

    let workers: Vec<(Proc, String)> = worker_hosts
        .iter()
        .zip(&worker_files)
        .zip(1..)
        .map(|((host, file), id)| {
            let extra = ["--listen", &host.addr, "--log-level", "info"];
            start_worker_on(&host.on(), id, 1, Credentials::File(file), &extra)
        })
        .collect();
    for ((_, url), host) in workers.iter().zip(&worker_hosts) {
        assert!(
            host_port(url).starts_with(&format!("{}:", host.addr)),
            "{url}"
        );
    }
    broker.wait_for_log("worker joined", 3);

    let mut client = start_big_job(&front_host.on(), &front_end);

    let victim = &worker_hosts[1];
    network.cut(victim);
    let cut = Instant::now();

    // The broker drops worker 2, and only it, once keepalive notices.
    let left = broker.wait_for_worker_left();
    let dropped_after = cut.elapsed();
    println!("the broker dropped the cut-off worker {dropped_after:?} after the cut");
    assert!(
        left.contains("worker-2/2") && left.contains("keepalive"),
        "the broker dropped another worker, or not by keepalive: {left}"
    );

    let status = client.wait_exit(PATIENCE * 2);
    println!("the job ended {:?} after the cut", cut.elapsed());
    assert!(status.success(), "calc-client failed:\n{}", client.log);
    assert_eq!(total(&client.stdout), Some(BIG_JOB_TOTAL), "{}", client.log);

    // Worker 2 is reported lost by keepalive, and its chunks went to the others.
    let (_, victim_url) = &workers[1];
    let victim_row = lost_worker_row(&client, victim_url);
    assert!(
        victim_row.contains("keepalive"),
        "the cut-off worker's row: {victim_row}\n{}",
        client.log
    );
    for (_, url) in [&workers[0], &workers[2]] {
        let survivor = table_row(&client, &host_port(url));
        assert!(!survivor.contains("lost"), "{survivor}\n{}", client.log);
    }

    // The survivors stayed queued all along.
    assert_eq!(broker.workers_left(), 1, "{}", broker.log());

    // Everything stops, then the network goes, leaving nothing behind.
    drop(client);
    drop(workers);
    broker.kill();
    network
        .tear_down()
        .unwrap_or_else(|e| panic!("tearing down the test network: {e}"));
}
