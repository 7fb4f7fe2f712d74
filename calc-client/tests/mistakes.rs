//! What a new user gets wrong at first contact, and what the real binaries tell them: a URL
//! of the wrong kind of server (a worker's where the broker's belongs, and the other way
//! round), an address without a port or a host, and a worker whose broker does not answer
//! (said once, not at every retry).

mod common;

use std::net::SocketAddr;

use broker_server::Role;
use common::{
    Credentials, Login, PATIENCE, Proc, TestBroker, calc_client, calc_worker, host_port,
    start_worker,
};

/// An address on loopback where nothing listens: connecting there is refused.
fn refused_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A credentials file for a made-up user of the "broker" at `url`, in `dir`.
fn credentials_for(url: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let login = Login {
        broker: url.to_owned(),
        user: "someone".into(),
        password: "not checked".into(),
    };
    login.write_file(dir)
}

/// A worker's URL where the broker's belongs: the front end says it is a worker and what to
/// give instead, and exits 1; a worker logs the same as an error (and does not retry it at
/// once).
#[test]
fn a_worker_url_given_as_the_broker_is_called_a_worker() {
    let (_worker, url) = start_worker(1, 1, Credentials::None);
    let dir = tempfile::tempdir().unwrap();
    let file = credentials_for(&url, dir.path());
    let file = file.to_str().unwrap();

    let mut client = Proc::spawn("calc-client", &calc_client(), &["--credentials", file]);
    let status = client.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{}", client.log);
    let expected = format!(
        "error: {} is a calculator worker, not a broker: use the broker's URL",
        host_port(&url)
    );
    assert!(client.log.contains(&expected), "{}", client.log);

    let (mut second, _) = start_worker(2, 1, Credentials::File(std::path::Path::new(file)));
    second.wait_for_log(PATIENCE, "is a calculator worker, not a broker", 1);
    assert!(
        second.log.contains("ERROR") && second.log.contains("retrying in 30s"),
        "{}",
        second.log
    );
}

/// The broker's URL given as a worker's (`--workers`): the worker is said to be a broker,
/// with the option to use instead.
#[test]
fn a_broker_url_given_as_a_worker_is_called_a_broker() {
    let broker = TestBroker::start();
    let url = broker.add_user("front-end", Role::FrontEnd).broker;
    let mut client = Proc::spawn(
        "calc-client",
        &calc_client(),
        &["--workers", &url, "--limit", "100000"],
    );
    let status = client.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{}", client.log);
    assert!(
        client
            .log
            .contains("it is a broker (its login object), not a worker")
            && client
                .log
                .contains("--credentials FILE instead of --workers"),
        "{}",
        client.log
    );
    assert!(!client.log.contains("could not decode"), "{}", client.log);
}

/// A worker whose broker does not answer says so once, naming the broker and the retry
/// interval, then retries quietly: never "link lost", which it never had.
#[test]
fn a_worker_without_its_broker_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = refused_addr();
    let file = credentials_for(&broker, dir.path());
    let mut worker = Proc::spawn(
        "worker",
        &calc_worker(),
        &[
            "--id",
            "1",
            "--credentials",
            file.to_str().unwrap(),
            "--log-level",
            "calc_client=debug",
        ],
    );
    // Four attempts: the first said, three more retried quietly (logged at debug level).
    worker.wait_for_log(PATIENCE, "broker unreachable", 3);
    let said = format!("could not reach the broker at {broker}: connection refused");
    assert_eq!(worker.log_lines(&said), 1, "{}", worker.log);
    assert!(worker.log.contains("retrying every 2s"), "{}", worker.log);
    assert_eq!(worker.log_lines(" WARN "), 1, "{}", worker.log);
    assert!(!worker.log.contains("lost"), "{}", worker.log);
}

/// Addresses without a port (or a host) are refused as the command line or the credentials
/// are read (exit 2), saying the form to use and, where only the port is missing, the
/// address completed as an example.
#[test]
fn an_incomplete_address_says_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let no_port = credentials_for("localhost", dir.path());
    let no_port = no_port.to_str().unwrap();
    let cases: [(&str, &std::path::Path, &[&str], &str); 5] = [
        (
            "calc-client",
            &calc_client(),
            &["--credentials", no_port],
            "\"localhost\" has no port: give HOST:PORT, e.g. localhost:8990",
        ),
        (
            "calc-worker",
            &calc_worker(),
            &["--credentials", no_port],
            "\"localhost\" has no port: give HOST:PORT, e.g. localhost:8990",
        ),
        (
            "calc-worker",
            &calc_worker(),
            &["--listen", ":8901"],
            "no host before the port: give HOST:PORT, e.g. 127.0.0.1:8901",
        ),
        (
            "calc-worker",
            &calc_worker(),
            &["--advertise", "example.org"],
            "\"example.org\" has no port: give HOST:PORT, e.g. example.org:8901",
        ),
        (
            "calc-worker",
            &calc_worker(),
            &["--listen", "127.0.0.1:99999"],
            "\"99999\" is not a port number",
        ),
    ];
    for (name, program, args, expected) in cases {
        let mut process = Proc::spawn(name, program, args);
        let status = process.wait_exit(PATIENCE);
        assert_eq!(status.code(), Some(2), "{args:?}:\n{}", process.log);
        assert!(
            process.log.contains(expected),
            "{args:?}: expected {expected:?} in\n{}",
            process.log
        );
    }

    // A host alone is enough to listen on: any free port, as without --listen.
    let mut worker = Proc::spawn(
        "worker",
        &calc_worker(),
        &["--id", "3", "--listen", "localhost"],
    );
    let addr: SocketAddr = worker
        .wait_for_addr("worker 3 listening on")
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
}
