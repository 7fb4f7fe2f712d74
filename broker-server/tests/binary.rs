//! The real `broker-server` binary: it announces its address on stdout, serves the broker
//! there, and exits 0 promptly on SIGTERM; `--help` documents it; a bad or incomplete address
//! is a clear error; `--max-workers` bounds the workers it tracks; counts and times out of range
//! are refused.
//!
//! Every process a test starts is killed when the test ends, passed or failed ([`Broker`]'s
//! `Drop`). Waits are bounded by [`PATIENCE`]; nothing sleeps to synchronise.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use broker_server::{BrokerCredentials, BrokerRef, DataDir, MAX_PAGE, Role};
use rpc_core::RemoteRef;

/// How long any wait in these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

const BINARY: &str = env!("CARGO_BIN_EXE_broker-server");

/// A running `broker-server` process; killed on drop if it is still running.
struct Broker {
    child: Child,
    addr: SocketAddr,
    /// The `pbrs://` URL it printed.
    url: String,
    /// The address of its HTTP side, with `--http`.
    http: Option<SocketAddr>,
    /// Its data directory, with one user, an admin.
    data: TempDir,
    admin_password: String,
    /// Everything it wrote on stderr, once it has exited.
    stderr: mpsc::Receiver<String>,
    /// What came on stdout after the announce line: `None` at the end of the output.
    more_stdout: mpsc::Receiver<Option<std::io::Result<String>>>,
}

impl Broker {
    /// Starts the binary on a free loopback port and waits for its announce line.
    fn start() -> Broker {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with `extra` arguments.
    fn start_with(extra: &[&str]) -> Broker {
        let data = TempDir::new("broker");
        let admin_password = DataDir::open(&data.0)
            .unwrap()
            .add_user("admin", Role::Admin)
            .unwrap();
        Self::start_in(data, admin_password, extra)
    }

    /// Starts the binary with the data directory `data`.
    fn start_in(data: TempDir, admin_password: String, extra: &[&str]) -> Broker {
        let mut child = Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--log-level", "debug", "--data"])
            .arg(&data.0)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start broker-server");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // Read on threads: a pipe read cannot time out, a channel receive can.
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = line_tx.send(lines.next());
            let _ = line_tx.send(lines.next());
            // The third is `http: ...` with --http; any further line would break the promise
            // of two lines (three with --http).
            let _ = line_tx.send(lines.next());
            let _ = line_tx.send(lines.next());
        });
        let (stderr_tx, stderr_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = stderr_tx.send(text);
        });
        let mut broker = Broker {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            url: String::new(),
            http: None,
            data,
            admin_password,
            stderr: stderr_rx,
            more_stdout: line_rx,
        };
        let line = broker.announced("broker listening on ");
        broker.addr = line.parse().expect("an address in the announce line");
        if !extra.contains(&"--plaintext") {
            broker.url = broker.announced("broker url: ");
        }
        if extra.contains(&"--http") {
            let url = broker.announced("http: http://");
            let addr = url.strip_suffix('/').expect("an http URL ending with /");
            broker.http = Some(addr.parse().expect("an address in the http line"));
        }
        broker
    }

    /// The rest of the next line on stdout, which must start with `prefix`.
    fn announced(&mut self, prefix: &str) -> String {
        let line = match self.more_stdout.recv_timeout(PATIENCE) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "no {prefix:?} line from broker-server ({other:?}); stderr:\n{}",
                self.stderr_after_kill()
            ),
        };
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected a line {prefix:?}..., got {line:?}"))
            .to_owned()
    }

    /// Logs in as the admin.
    async fn admin(&self) -> BrokerRef {
        let credentials = BrokerCredentials::new(&self.url, "admin", &self.admin_password);
        tokio::time::timeout(PATIENCE, credentials.connect())
            .await
            .expect("log in in time")
            .expect("log in")
    }

    /// Sends SIGTERM, as a service manager would.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit, polling `try_wait` within [`PATIENCE`].
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "broker-server still running {PATIENCE:?} after SIGTERM; stderr:\n{}",
                    self.stderr_after_kill()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (if still running) and returns what it wrote on stderr.
    fn stderr_after_kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.recv_timeout(PATIENCE).unwrap_or_default()
    }
}

/// Runs `command` to the end, within [`PATIENCE`] (killed and failed after that).
fn run_to_end(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start broker-server");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let output = child.wait_with_output();
            panic!("broker-server still running after {PATIENCE:?}: {output:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect the output")
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_then_exits_zero_on_sigterm() {
    let mut broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker_ref = broker.admin().await;
        let client = broker_ref.peer().expect("a remote broker");
        let workers = tokio::time::timeout(PATIENCE, broker_ref.workers(0, MAX_PAGE))
            .await
            .expect("answer in time")
            .expect("workers()")
            .expect("an admin may list workers");
        assert!(workers.workers.is_empty());
        assert_eq!(workers.total, 0);
        assert_eq!(broker_ref.next_worker().await.unwrap().unwrap(), None);
        // An open connection must not hold the shutdown up.
        broker.terminate();
        let status = broker.wait();
        let stderr = broker.stderr.recv_timeout(PATIENCE).unwrap_or_default();
        assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
        assert!(stderr.contains("SIGTERM"), "stderr:\n{stderr}");
        let more = broker
            .more_stdout
            .recv_timeout(PATIENCE)
            .expect("stdout closed");
        assert!(more.is_none(), "a second line on stdout: {more:?}");
        tokio::time::timeout(PATIENCE, client.disconnected())
            .await
            .expect("the client sees the connection close");
    });
}

#[test]
fn http_is_announced_after_the_broker_and_stops_with_it() {
    #[path = "support/http.rs"]
    mod support;

    let mut broker = Broker::start_with(&["--http", "0"]);
    let http = broker.http.unwrap();
    assert!(
        http.ip().is_loopback(),
        "a bare port serves loopback: {http}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let health = support::get(http, "/healthz").await;
        assert_eq!(health.status, 200, "{health:?}");
        let admin = broker.admin().await;
        assert_eq!(admin.next_worker().await.unwrap().unwrap(), None);
        // The binary installed a Prometheus recorder: the hand-out's timing is there.
        let metrics = support::get(http, "/metrics").await;
        assert_eq!(metrics.status, 200, "{metrics:?}");
        let parsed = support::parse_prometheus(&metrics.body);
        assert_eq!(
            parsed.value("pbrs_broker_next_worker_seconds_count"),
            1.0,
            "{metrics:?}"
        );
        let page = support::get(http, "/").await;
        assert!(page.body.contains("pbrs broker"), "{page:?}");
        broker.terminate();
        let status = broker.wait();
        assert!(status.success(), "exit status {status}");
        assert!(
            tokio::net::TcpStream::connect(http).await.is_err(),
            "the HTTP side stopped with the broker"
        );
    });
    let more = broker
        .more_stdout
        .recv_timeout(PATIENCE)
        .expect("stdout closed");
    assert!(more.is_none(), "a fourth line on stdout: {more:?}");
}

#[test]
fn a_bad_http_address_is_refused_with_what_to_write() {
    let output = run_to_end(Command::new(BINARY).args(["--http", "localhost"]));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--http") && stderr.contains("localhost:9090"),
        "{stderr}"
    );
}

#[test]
fn help_documents_the_options() {
    let output = run_to_end(Command::new(BINARY).arg("--help"));
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for wanted in [
        "--listen",
        "--log-level",
        "RUST_LOG",
        "SIGTERM",
        "127.0.0.1:8990",
        "--max-workers",
        "[default: 100000]",
        "--http",
        "/metrics",
        "--keepalive-interval",
        "--keepalive-timeout",
    ] {
        assert!(
            help.contains(wanted),
            "--help does not mention {wanted}:\n{help}"
        );
    }
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = run_to_end(Command::new(BINARY).args(["--listen", &addr]));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&addr) && stderr.contains("--listen"),
        "stderr should name the address and the option:\n{stderr}"
    );
}

#[test]
fn a_bad_log_level_is_refused() {
    let output = run_to_end(Command::new(BINARY).args([
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "broker_server=loud",
    ]));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--log-level"), "{stderr}");
}

#[test]
fn max_workers_refuses_a_worker_beyond_the_limit() {
    use broker_server::queue::{Applied, Change, WorkerId, WorkerUpdate};

    fn added(name: &str) -> WorkerUpdate {
        WorkerUpdate {
            worker: WorkerId::from(name),
            seq: 1,
            change: Change::Added {
                addr: format!("{name}.test:1"),
                capacity: 1,
                load: 0,
            },
        }
    }

    let mut broker = Broker::start_with(&["--max-workers", "1"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let scheduler = broker.admin().await;
        let client = scheduler.peer().expect("a remote broker");
        assert_eq!(
            scheduler.publish(added("a")).await.unwrap().unwrap(),
            Applied::Added
        );
        assert_eq!(
            scheduler.publish(added("b")).await.unwrap().unwrap(),
            Applied::Full
        );
        assert_eq!(
            scheduler
                .workers(0, MAX_PAGE)
                .await
                .unwrap()
                .unwrap()
                .workers
                .len(),
            1
        );
        client.close();
    });
    broker.terminate();
    let status = broker.wait();
    let stderr = broker.stderr.recv_timeout(PATIENCE).unwrap_or_default();
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("worker refused"),
        "the refusal should be a warning; stderr:\n{stderr}"
    );
}

#[test]
fn a_count_or_a_time_out_of_range_is_refused() {
    for (option, value, why) in [
        ("--max-workers", "0", "at least 1"),
        ("--keepalive-interval", "0", "at least 1"),
        ("--keepalive-timeout", "86401", "at most 86400"),
    ] {
        let output =
            run_to_end(Command::new(BINARY).args(["--listen", "127.0.0.1:0", option, value]));
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(option) && stderr.contains(why), "{stderr}");
    }
}

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let unique = rpc_core::SturdyUrl::new_secret().unwrap();
        let path = std::env::temp_dir().join(format!("pbrs-{tag}-{}", &unique[..16]));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `add-user` prints the URL and the new user's credentials (or writes them to a file); a
/// worker logs in with them over TLS, and the URL stays the same when the broker restarts.
#[test]
fn add_user_gives_what_a_worker_needs_and_the_url_survives_a_restart() {
    let mut broker = Broker::start();
    let add = |extra: &[&str]| {
        let output = run_to_end(
            Command::new(BINARY)
                .args(["add-user", "w1", "--role", "worker", "--data"])
                .arg(&broker.data.0)
                .args(["--advertise", &broker.addr.to_string()])
                .args(extra),
        );
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let printed = add(&[]);
    let value = |key: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= line in:\n{printed}"))
            .to_owned()
    };
    assert_eq!(value("PBRS_BROKER_URL"), broker.url);
    assert_eq!(value("PBRS_USER"), "w1");
    let password = value("PBRS_PASSWORD");
    let file = broker.data.0.join("w1.credentials");
    let written = add(&["--credentials-file", file.to_str().unwrap()]);
    assert!(written.contains("credentials written to"), "{written}");
    assert!(!written.contains("PBRS_PASSWORD"), "{written}");
    let from_file = BrokerCredentials::from_file(&file).unwrap();
    assert_eq!(from_file.broker, broker.url);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A broker reads its users when it starts: w1, added since, is not one yet.
        let stale = BrokerCredentials::new(&broker.url, "w1", &password)
            .connect()
            .await;
        assert!(stale.is_err(), "w1 did not exist when the broker started");
    });
    broker.terminate();
    assert!(broker.wait().success());
    let data = std::mem::replace(&mut broker.data, TempDir::new("unused"));
    let admin_password = broker.admin_password.clone();
    let url = broker.url.clone();
    drop(broker);

    let broker = Broker::start_in(data, admin_password, &[]);
    let same_except_port = |u: &str| u.rsplit_once('/').map(|(_, s)| s.to_owned());
    assert_eq!(same_except_port(&broker.url), same_except_port(&url));
    assert_eq!(
        broker.url.split('@').next(),
        url.split('@').next(),
        "the same fingerprint"
    );
    runtime.block_on(async {
        let restarted = BrokerCredentials {
            broker: broker.url.clone(),
            ..from_file
        };
        let worker = tokio::time::timeout(PATIENCE, restarted.connect())
            .await
            .expect("log in in time")
            .expect("w1 logs in with the credentials file");
        let refused = worker.next_worker().await.unwrap();
        assert!(
            refused.is_err(),
            "a worker may not ask for workers: {refused:?}"
        );
    });
}

#[test]
fn plaintext_on_a_network_address_needs_the_insecure_flag() {
    let data = TempDir::new("plain");
    let output = run_to_end(
        Command::new(BINARY)
            .args(["--listen", "0.0.0.0:0", "--plaintext", "--data"])
            .arg(&data.0),
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("without TLS") && stderr.contains("--insecure-plaintext"),
        "{stderr}"
    );
    // On loopback, --plaintext serves.
    let mut broker = Broker::start_with(&["--plaintext"]);
    assert!(broker.url.is_empty());
    broker.terminate();
    assert!(broker.wait().success());
}

/// `--advertise` and `--listen` are checked as the command line is read (exit 2), with a
/// message naming the option, the expected form, and what to write.
#[test]
fn addresses_without_a_port_or_host_say_what_to_write() {
    let data = TempDir::new("advertise");
    for (option, value, says) in [
        (
            "--advertise",
            "example.org",
            "\"example.org\" has no port: give HOST:PORT, e.g. example.org:8990",
        ),
        (
            "--listen",
            ":8990",
            "no host before the port: give HOST:PORT, e.g. 127.0.0.1:8990",
        ),
        ("--listen", "localhost:99999", "not a port number"),
    ] {
        let mut command = Command::new(BINARY);
        command.args([option, value]).arg("--data").arg(&data.0);
        if option != "--listen" {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let output = run_to_end(&mut command);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{option} {value}: {output:?}"
        );
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains(option) && stderr.contains(says),
            "{option} {value}: {stderr}"
        );
    }
}
