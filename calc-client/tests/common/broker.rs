//! A real `broker-server` process for tests ([`BrokerProc`]): its users added with its own
//! `add-user`, started (again) on a fixed address, on this host or another host of a test
//! network, and killed by its [`Proc`] guard.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{On, PATIENCE, Proc, calc_client};

/// What the broker logs when a worker leaves the queue because its connection dropped.
pub const WORKER_LEFT: &str = "worker left: its connection dropped";

/// The `broker-server` binary of the workspace, next to this package's binaries (built by
/// `cargo build`/`cargo test` of the workspace). When it is missing (`cargo test -p
/// calc-client` alone builds only this package's binaries), it is built first, into the same
/// target directory.
pub fn broker_server() -> PathBuf {
    let path =
        calc_client().with_file_name(format!("broker-server{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        // <target>/<profile>/calc-client: build in <target>, with the same profile.
        let profile_dir = path.parent().expect("a binary is in a directory");
        let target = profile_dir
            .parent()
            .expect("the profile is in the target directory");
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        build
            .args(["build", "-p", "broker-server", "--bin", "broker-server"])
            .arg("--target-dir")
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo to build broker-server");
        assert!(status.success(), "cargo build -p broker-server failed");
    }
    path
}

/// A `broker-server` process with its data directory: users are added with its
/// `add-user` (before it starts: it reads its users when it starts), and it can be killed and
/// started again on the same port with the same data.
pub struct BrokerProc {
    /// The process, while it runs.
    pub proc: Option<Proc>,
    /// `host:port`, fixed for its restarts (`127.0.0.1:<port>` from [`new`](BrokerProc::new)).
    pub addr: String,
    /// The data directory (identity, URL secret, users), and credentials files.
    pub data: tempfile::TempDir,
    /// Where it runs.
    on: On,
    /// Arguments for `broker-server` besides `--listen`, `--data` and `--log-level`.
    extra: Vec<String>,
}

impl BrokerProc {
    /// A broker on a free loopback port, not started yet.
    pub fn new() -> BrokerProc {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        BrokerProc::on(On::ThisHost, &format!("127.0.0.1:{port}"))
    }

    /// A broker that will listen on `addr` where `on` says (`addr` must be free there); not
    /// started yet.
    pub fn on(on: On, addr: &str) -> BrokerProc {
        BrokerProc {
            proc: None,
            addr: addr.to_owned(),
            data: tempfile::tempdir().unwrap(),
            on,
            extra: Vec::new(),
        }
    }

    /// Gives `broker-server` the further arguments `extra` (such as `--keepalive-interval`)
    /// whenever it starts.
    pub fn args(mut self, extra: &[&str]) -> BrokerProc {
        self.extra = extra.iter().map(|&arg| arg.to_owned()).collect();
        self
    }

    /// `broker-server add-user`: adds `name` with `role` (`worker`, `front-end`) and returns
    /// the path of its credentials file.
    pub fn add_user(&self, name: &str, role: &str) -> PathBuf {
        let file = self.data.path().join(format!("{name}.credentials"));
        let output = Command::new(broker_server())
            .args(["add-user", name, "--role", role, "--data"])
            .arg(self.data.path())
            .args(["--advertise", &self.addr, "--credentials-file"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run broker-server add-user");
        assert!(output.status.success(), "add-user {name}: {output:?}");
        file
    }

    /// Starts (or starts again) the broker on its port, and waits until it listens.
    pub fn start(&mut self) {
        let mut args = vec![
            "--listen",
            &self.addr,
            "--data",
            self.data.path().to_str().unwrap(),
            "--log-level",
            "info",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let mut proc = Proc::spawn_on(&self.on, "broker", &broker_server(), &args, &[]);
        let listening = proc.wait_for_addr("broker listening on");
        assert_eq!(listening, self.addr, "{}", proc.log);
        self.proc = Some(proc);
    }

    /// Waits until `count` lines of the broker's log contain `needle`.
    pub fn wait_for_log(&mut self, needle: &str, count: usize) {
        let proc = self.proc.as_mut().expect("the broker runs");
        proc.wait_for_log(PATIENCE, needle, count);
    }

    /// Everything the broker has written so far that was read.
    pub fn log(&self) -> &str {
        self.proc.as_ref().map_or("", |proc| proc.log.as_str())
    }

    /// Waits until the broker logs that a worker left because its connection dropped
    /// ([`WORKER_LEFT`]), and returns the first such line.
    pub fn wait_for_worker_left(&mut self) -> String {
        self.wait_for_log(WORKER_LEFT, 1);
        let line = self.log().lines().find(|line| line.contains(WORKER_LEFT));
        line.expect("waited for it").to_owned()
    }

    /// How many times the broker has logged [`WORKER_LEFT`] so far.
    pub fn workers_left(&mut self) -> usize {
        let proc = self.proc.as_mut().expect("the broker runs");
        proc.read_available();
        proc.log_lines(WORKER_LEFT)
    }

    /// Kills the broker with SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }
}
