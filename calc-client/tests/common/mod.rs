//! Test helpers: real processes that are always killed and reaped (a guard's `Drop` does it,
//! on failure too), their output read line by line with timeouts, and a broker served over
//! TLS in the test's process with users whose credentials go to the processes in a file or
//! in the environment. No sleeps as synchronisation: every wait is for a line, an exit, or a
//! broker event, with a deadline. A process may run on another host of a test network
//! ([`netns`]); a real `broker-server` process is a [`BrokerProc`].

#![allow(dead_code, unreachable_pub)]

mod broker;
mod job;
pub mod netns;

#[allow(unused_imports)] // not every test uses it
pub use broker::BrokerProc;
#[allow(unused_imports)] // not every test uses them
pub use job::{BIG_JOB, BIG_JOB_TOTAL, lost_worker_row, start_big_job, table_row, total};
pub use netns::On;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use broker_server::access::{ENV_PASSWORD, ENV_URL, ENV_USER, credentials_file};
use broker_server::{Access, BrokerService, Role, RunningBroker, Users};
use rpc_core::SturdyUrl;
use rpc_core::tls::Identity;

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
    /// Starts `program` with `args`, stdout and stderr captured, and no broker credentials
    /// in its environment (whatever the test's own environment holds).
    pub fn spawn(name: &str, program: &Path, args: &[&str]) -> Proc {
        Proc::spawn_with_env(name, program, args, &[])
    }

    /// Like [`spawn`](Proc::spawn), with the environment variables `env` set.
    pub fn spawn_with_env(name: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_on(&On::ThisHost, name, program, args, env)
    }

    /// Like [`spawn_with_env`](Proc::spawn_with_env), run where `on` says (on another host:
    /// `ip netns exec` runs `program` in place of itself, so this is still its process).
    pub fn spawn_on(
        on: &On,
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Proc {
        let mut child = on
            .command(program)
            .args(args)
            .env_remove(ENV_URL)
            .env_remove(ENV_USER)
            .env_remove(ENV_PASSWORD)
            .envs(env.iter().copied())
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

    /// Waits (at most `timeout`) until `count` stderr lines (the log) contain `needle`,
    /// counting those read already; panics with the output so far if they do not come.
    pub fn wait_for_log(&mut self, timeout: Duration, needle: &str, count: usize) {
        let deadline = Instant::now() + timeout;
        let mut seen = self.log_lines(needle);
        if seen < count {
            self.read_until(deadline, |out| {
                if let Out::Stderr(line) = out
                    && line.contains(needle)
                {
                    seen += 1;
                }
                seen >= count
            });
        }
        assert!(
            seen >= count,
            "{}: {seen} of {count} log lines with {needle:?} within {timeout:?}; output so far:\n{}",
            self.name,
            self.log
        );
    }

    /// Reads the output the process has written so far, without waiting for more.
    pub fn read_available(&mut self) {
        self.read_until(Instant::now(), |_| false);
    }

    /// How many stderr lines read so far contain `needle`.
    pub fn log_lines(&self, needle: &str) -> usize {
        let prefix = format!("[{} stderr] ", self.name);
        self.log
            .lines()
            .filter(|line| line.starts_with(&prefix) && line.contains(needle))
            .count()
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

    /// Sends the process the signal `signal` (`TERM`, `STOP`, ...) with `kill`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}: {status}", self.name);
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

/// A broker user's credentials, handed to a process in a file or in the environment.
pub struct Login {
    /// The broker's `pbrs://` URL.
    pub broker: String,
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl Login {
    /// Writes a credentials file for this user in `dir`, and returns its path.
    pub fn write_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.credentials", self.user));
        std::fs::write(
            &path,
            credentials_file(&self.broker, &self.user, &self.password),
        )
        .expect("write the credentials file");
        path
    }

    /// The environment variables that carry these credentials.
    pub fn env(&self) -> [(&str, &str); 3] {
        [
            (ENV_URL, self.broker.as_str()),
            (ENV_USER, self.user.as_str()),
            (ENV_PASSWORD, self.password.as_str()),
        ]
    }
}

/// A broker over TLS, served by a runtime of the test's own; stopped when dropped.
pub struct TestBroker {
    runtime: tokio::runtime::Runtime,
    running: Option<RunningBroker>,
    users: Users,
    /// A directory for credentials files, removed when the broker is dropped.
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts a broker over TLS (a new identity) on a loopback port, with no users.
    pub fn start() -> TestBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let users = Users::new();
        let identity = Identity::generate(&["localhost"]).unwrap();
        let running = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            broker_server::spawn_on(
                listener,
                BrokerService::new(),
                Access::tls(users.clone(), identity),
            )
            .unwrap()
        });
        TestBroker {
            runtime,
            running: Some(running),
            users,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn running(&self) -> &RunningBroker {
        self.running.as_ref().expect("running until dropped")
    }

    /// Adds the user `name` with `role` and a random password.
    pub fn add_user(&self, name: &str, role: Role) -> Login {
        let password = SturdyUrl::new_secret().unwrap();
        self.users.add(name, role, &password).unwrap();
        Login {
            broker: self.running().location(),
            user: name.to_owned(),
            password,
        }
    }

    /// The ids of the queued workers, most able first.
    pub fn worker_ids(&self) -> Vec<String> {
        let workers = self.running().service().workers();
        workers.into_iter().map(|w| w.id.0).collect()
    }

    /// Waits until `done` holds of the queued worker ids, re-checking at each of the broker's
    /// worker events (and every 20 ms, for removals published without one); returns how long
    /// it took, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Duration {
        let start = Instant::now();
        let mut events = self.running().service().subscribe();
        self.runtime.block_on(async {
            loop {
                let ids = self.worker_ids();
                if done(&ids) {
                    return start.elapsed();
                }
                assert!(
                    start.elapsed() < timeout,
                    "the broker still lists {ids:?} after {timeout:?}"
                );
                let _ = tokio::time::timeout(Duration::from_millis(20), events.recv()).await;
            }
        })
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown());
        }
    }
}

/// How a worker process gets its broker credentials.
pub enum Credentials<'a> {
    /// It joins no broker.
    None,
    /// `--credentials FILE`.
    File(&'a Path),
    /// The environment variables.
    Env(&'a Login),
}

/// A worker process with `id` and `capacity`, logged in to a broker as `credentials` say;
/// returns it with its `pbrs://` URL once it prints it.
pub fn start_worker(id: u32, capacity: u32, credentials: Credentials<'_>) -> (Proc, String) {
    start_worker_on(
        &On::ThisHost,
        id,
        capacity,
        credentials,
        &["--log-level", "warn"],
    )
}

/// Like [`start_worker`], run where `on` says, with the further arguments `extra` (such as
/// `--listen` and `--log-level`).
pub fn start_worker_on(
    on: &On,
    id: u32,
    capacity: u32,
    credentials: Credentials<'_>,
    extra: &[&str],
) -> (Proc, String) {
    let (id_s, capacity_s) = (id.to_string(), capacity.to_string());
    let mut args = vec!["--id", &id_s, "--capacity", &capacity_s];
    args.extend_from_slice(extra);
    let mut env: &[(&str, &str)] = &[];
    let login_env;
    match credentials {
        Credentials::None => {}
        Credentials::File(path) => args.extend(["--credentials", path.to_str().unwrap()]),
        Credentials::Env(login) => {
            login_env = login.env();
            env = &login_env;
        }
    }
    let mut worker = Proc::spawn_on(on, &format!("worker {id}"), &calc_worker(), &args, env);
    worker.wait_for_addr(&format!("worker {id} listening on"));
    let url = worker.wait_for_addr("worker url:");
    (worker, url)
}

/// The `host:port` in a worker's `pbrs://` URL: what the front end's report shows.
pub fn host_port(url: &str) -> String {
    url.parse::<SturdyUrl>().unwrap().addr().to_owned()
}

/// The `<done>` of a `progress: <done>/<total> chunks` line.
pub fn progress(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("progress: ")?;
    rest.split('/').next()?.parse().ok()
}
