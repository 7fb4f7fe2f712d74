//! Test helpers: real processes that are always killed and reaped (a guard's `Drop` does it,
//! on failure too), their output read line by line with timeouts, and a pbrs client of the
//! broker. No sleeps as synchronisation: every wait is for a line, an exit, or a condition
//! polled with a deadline.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use broker_server::queue::WorkerState;
use broker_server::{BrokerRef, MAX_PAGE};
use rpc_core::Client;

/// A generous limit for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `calc-worker` binary of this package.
pub fn calc_worker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_calc-worker"))
}

/// The `calc-client` binary of this package.
pub fn calc_client() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_calc-client"))
}

/// The `broker-server` binary, next to this package's binaries in the same target dir.
pub fn broker_server() -> PathBuf {
    let path =
        calc_worker().with_file_name(format!("broker-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the broker-server binary is missing at {}: it belongs to another package, so \
         `cargo test -p calc-client` does not build it. Run `cargo build -p broker-server` \
         first, or use `cargo test --workspace`.",
        path.display()
    );
    path
}

enum Out {
    Stdout(String),
    Stderr(String),
    StdoutClosed,
}

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    name: String,
    child: Child,
    output: Receiver<Out>,
    /// Everything read so far, both streams interleaved, for failure messages.
    pub log: String,
    /// The stdout lines read so far.
    pub stdout: Vec<String>,
    stdout_closed: bool,
}

fn forward(stream: impl Read + Send + 'static, tx: std::sync::mpsc::Sender<Out>, stdout: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let out = if stdout {
                Out::Stdout(line)
            } else {
                Out::Stderr(line)
            };
            if tx.send(out).is_err() {
                return;
            }
        }
        if stdout {
            let _ = tx.send(Out::StdoutClosed);
        }
    });
}

impl Proc {
    /// Starts `program` with `args`, stdout and stderr captured.
    pub fn spawn(name: &str, program: &Path, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let (tx, output) = channel();
        forward(child.stdout.take().unwrap(), tx.clone(), true);
        forward(child.stderr.take().unwrap(), tx, false);
        Proc {
            name: name.to_owned(),
            child,
            output,
            log: String::new(),
            stdout: Vec::new(),
            stdout_closed: false,
        }
    }

    /// The OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Reads output until `stop` says so or `deadline` passes; `false` on the deadline or
    /// once stdout is closed.
    fn read_until(&mut self, deadline: Instant, mut stop: impl FnMut(&Out) -> bool) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let out = match self.output.recv_timeout(left) {
                Ok(out) => out,
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return false,
            };
            match &out {
                Out::Stdout(line) => {
                    self.log
                        .push_str(&format!("[{} stdout] {line}\n", self.name));
                    self.stdout.push(line.clone());
                }
                Out::Stderr(line) => self
                    .log
                    .push_str(&format!("[{} stderr] {line}\n", self.name)),
                Out::StdoutClosed => self.stdout_closed = true,
            }
            if stop(&out) {
                return true;
            }
            if self.stdout_closed {
                return false;
            }
        }
    }

    /// Waits (at most `timeout`) for a stdout line for which `pick` returns `Some`.
    pub fn wait_for<T>(&mut self, timeout: Duration, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        let mut found = None;
        self.read_until(deadline, |out| match out {
            Out::Stdout(line) => {
                found = pick(line);
                found.is_some()
            }
            _ => false,
        });
        found.unwrap_or_else(|| {
            panic!(
                "{}: no expected stdout line within {timeout:?}; output so far:\n{}",
                self.name, self.log
            )
        })
    }

    /// Waits for the `<prefix> <addr>` line every server prints, and returns the address.
    pub fn wait_for_addr(&mut self, prefix: &str) -> String {
        let prefix = format!("{prefix} ");
        self.wait_for(PATIENCE, |line| {
            line.strip_prefix(&prefix).map(str::to_owned)
        })
    }

    /// Waits (at most `timeout`) for the process to exit on its own, reading all its
    /// output; returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        if !self.stdout_closed {
            self.read_until(deadline, |out| matches!(out, Out::StdoutClosed));
        }
        assert!(
            self.stdout_closed,
            "{} did not finish within {timeout:?}; output so far:\n{}",
            self.name, self.log
        );
        let status = self.child.wait().expect("wait for the child");
        // The stderr reader ends at once now; keep its last lines for the log.
        while let Ok(out) = self.output.recv_timeout(Duration::from_secs(5)) {
            if let Out::Stderr(line) = out {
                self.log
                    .push_str(&format!("[{} stderr] {line}\n", self.name));
            }
        }
        status
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A broker process.
pub fn start_broker() -> (Proc, String) {
    let mut broker = Proc::spawn("broker", &broker_server(), &["--listen", "127.0.0.1:0"]);
    let addr = broker.wait_for_addr("broker listening on");
    (broker, addr)
}

/// A worker process with `id` and `capacity`, joined to `broker` if given.
pub fn start_worker(id: u32, capacity: u32, broker: Option<&str>) -> (Proc, String) {
    let (id_s, capacity_s) = (id.to_string(), capacity.to_string());
    let mut args = vec![
        "--id",
        &id_s,
        "--capacity",
        &capacity_s,
        "--log-level",
        "warn",
    ];
    if let Some(broker) = broker {
        args.extend(["--broker", broker]);
    }
    let mut worker = Proc::spawn(&format!("worker {id}"), &calc_worker(), &args);
    let addr = worker.wait_for_addr(&format!("worker {id} listening on"));
    (worker, addr)
}

/// A pbrs client of the broker at `addr`, on its own small runtime.
pub struct BrokerClient {
    runtime: tokio::runtime::Runtime,
    broker: BrokerRef,
    _client: Client,
}

impl BrokerClient {
    /// Connects to the broker at `addr`.
    pub fn connect(addr: &str) -> BrokerClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, broker) = runtime.block_on(async {
            let client = Client::connect(addr).await.expect("connect to the broker");
            let broker = client.root::<BrokerRef>().await.expect("the broker's root");
            (client, broker)
        });
        BrokerClient {
            runtime,
            broker,
            _client: client,
        }
    }

    /// The broker's queued workers.
    pub fn workers(&self) -> Vec<WorkerState> {
        self.runtime
            .block_on(self.broker.workers(0, MAX_PAGE))
            .expect("workers() on the broker")
            .expect("the served root is trusted")
            .workers
    }

    /// Polls `workers()` (every 5 ms) until `done` holds of the ids listed; returns how long
    /// it took, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            let ids: Vec<String> = self.workers().into_iter().map(|w| w.id.0).collect();
            if done(&ids) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "the broker still lists {ids:?} after {timeout:?}"
            );
            // The timer must be made inside the runtime.
            self.runtime
                .block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
        }
    }
}

/// The number in the `total: <n>` line of a client's stdout.
pub fn total(stdout: &[String]) -> Option<u64> {
    stdout
        .iter()
        .find_map(|l| l.strip_prefix("total: "))
        .and_then(|n| n.parse().ok())
}

/// The `<done>` of a `progress: <done>/<total> chunks` line.
pub fn progress(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("progress: ")?;
    rest.split('/').next()?.parse().ok()
}
