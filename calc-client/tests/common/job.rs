//! The front end's side of a test: a job long enough to do something to its workers mid-job
//! ([`BIG_JOB`], [`start_big_job`]), and what to read in its report: the total and the
//! per-worker table.

use std::path::Path;

use super::{On, PATIENCE, Proc, calc_client, host_port, progress};

/// `calc-client` arguments for a job that lasts several seconds in a debug build, long
/// enough to do something to its workers mid-job: the primes below 20 million
/// ([`BIG_JOB_TOTAL`]) in 200 chunks, with a `progress:` line on stdout for each.
pub const BIG_JOB: [&str; 6] = [
    "--limit",
    "20000000",
    "--chunk",
    "100000",
    "--progress",
    "lines",
];

/// The total of [`BIG_JOB`]: π(2·10^7).
pub const BIG_JOB_TOTAL: u64 = 1_270_607;

/// Starts `calc-client` where `on` says on [`BIG_JOB`], logged in to a broker with the
/// credentials file `credentials` and logging at `info`, and returns it once 5 chunks are
/// done (panicking if the job is then nearly over already).
pub fn start_big_job(on: &On, credentials: &Path) -> Proc {
    let login = [
        "--credentials",
        credentials.to_str().unwrap(),
        "--log-level",
        "info",
    ];
    let args = [&login[..], &BIG_JOB].concat();
    let mut client = Proc::spawn_on(on, "calc-client", &calc_client(), &args, &[]);
    let done = client.wait_for(PATIENCE, |line| progress(line).filter(|&done| done >= 5));
    assert!(done < 150, "the job is nearly over already: make it bigger");
    client
}

/// The number in the `total: <n>` line of a client's stdout.
pub fn total(stdout: &[String]) -> Option<u64> {
    stdout
        .iter()
        .find_map(|l| l.strip_prefix("total: "))
        .and_then(|n| n.parse().ok())
}

/// The report table's row of the worker at `addr` (`host:port`) in a client's stdout.
pub fn table_row(client: &Proc, addr: &str) -> String {
    client
        .stdout
        .iter()
        .find(|line| line.contains(addr))
        .unwrap_or_else(|| panic!("no table row for {addr}:\n{}", client.log))
        .clone()
}

/// Checks that the front end `client` lost the worker at `url` mid-job (it said the worker is
/// gone and its chunks go to the other workers), and returns the worker's table row, which
/// says `lost: connection lost: <why>`.
pub fn lost_worker_row(client: &Proc, url: &str) -> String {
    let addr = host_port(url);
    let gone = format!("({addr}) is gone (connection lost: ");
    assert!(
        client.log.contains(&gone) && client.log.contains("its chunks go to the other workers"),
        "{gone:?} in\n{}",
        client.log
    );
    let row = table_row(client, &addr);
    assert!(
        row.contains("lost: connection lost: "),
        "the lost worker's row: {row}\n{}",
        client.log
    );
    row
}
