//! Real processes for the tests: every one started through a [`Lab`] is killed and reaped
//! when the lab is dropped (on failure too). Their output lines all arrive on one channel,
//! so a test can wait for any condition over all of them; every wait has a deadline, and no
//! wait is a sleep.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// A generous limit for anything a test waits for, on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One line (or the end) of one stream of one process.
enum Event {
    Line {
        from: String,
        stdout: bool,
        line: String,
    },
    Closed {
        from: String,
    },
}

/// What is known of one process.
struct Proc {
    child: Child,
    stdout: Vec<String>,
    /// Streams closed so far (2: both, so the process has ended or will at once).
    closed: u8,
}

/// The processes of one test, and everything they printed.
pub struct Lab {
    events: Receiver<Event>,
    sender: Sender<Event>,
    procs: HashMap<String, Proc>,
    /// Every line read so far, in order, named by process: for failure messages.
    pub log: String,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    /// A lab with no process yet.
    pub fn new() -> Lab {
        let (sender, events) = channel();
        Lab {
            events,
            sender,
            procs: HashMap::new(),
            log: String::new(),
        }
    }

    /// Starts `program` with `args` as `name` (a name not used before in this lab).
    pub fn spawn(&mut self, name: &str, program: &str, args: &[&str]) {
        assert!(!self.procs.contains_key(name), "{name} started twice");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        self.forward(name, child.stdout.take().expect("piped"), true);
        self.forward(name, child.stderr.take().expect("piped"), false);
        let proc = Proc {
            child,
            stdout: Vec::new(),
            closed: 0,
        };
        self.procs.insert(name.to_owned(), proc);
    }

    fn forward(&self, name: &str, stream: impl Read + Send + 'static, stdout: bool) {
        let (from, events) = (name.to_owned(), self.sender.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let from = from.clone();
                if events.send(Event::Line { from, stdout, line }).is_err() {
                    return;
                }
            }
            let _ = events.send(Event::Closed { from });
        });
    }

    /// Reads output until `done` holds (checked first, then after each line), or panics
    /// after `timeout` with `what` and the output so far.
    pub fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Lab) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => self.record(event),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no {what} within {timeout:?}; output so far:\n{}", self.log)
                }
            }
        }
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Line { from, stdout, line } => {
                let stream = if stdout { "stdout" } else { "stderr" };
                self.log.push_str(&format!("[{from} {stream}] {line}\n"));
                if stdout && let Some(proc) = self.procs.get_mut(&from) {
                    proc.stdout.push(line);
                }
            }
            Event::Closed { from } => {
                if let Some(proc) = self.procs.get_mut(&from) {
                    proc.closed += 1;
                }
            }
        }
    }

    fn proc(&self, name: &str) -> &Proc {
        self.procs
            .get(name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// The stdout lines of `name` read so far.
    pub fn stdout(&self, name: &str) -> &[String] {
        &self.proc(name).stdout
    }

    /// The stderr lines of `name` read so far, one string.
    pub fn stderr(&self, name: &str) -> String {
        let prefix = format!("[{name} stderr] ");
        let lines = self.log.lines().filter_map(|l| l.strip_prefix(&prefix));
        lines.collect::<Vec<_>>().join("\n")
    }

    /// Whether both output streams of `name` are closed: it has ended.
    pub fn ended(&self, name: &str) -> bool {
        self.proc(name).closed == 2
    }

    /// The first stdout line of `name` that starts with `prefix`, the prefix cut off.
    pub fn line_after(&self, name: &str, prefix: &str) -> Option<String> {
        let lines = self.stdout(name).iter();
        lines
            .filter_map(|l| l.strip_prefix(prefix))
            .next()
            .map(str::to_owned)
    }

    /// Waits (at most `timeout`) for `name` to end, reading all its output; its status.
    pub fn wait_exit(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        self.wait_until(timeout, &format!("end of {name}"), |lab| lab.ended(name));
        let proc = self.procs.get_mut(name).expect("started");
        proc.child.wait().expect("wait for a child")
    }

    /// Sends `name` SIGKILL and reaps it.
    pub fn kill(&mut self, name: &str) {
        let proc = self
            .procs
            .get_mut(name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let _ = proc.child.kill();
        let _ = proc.child.wait();
    }

    /// Sends `name` SIGTERM (through `kill`, the command).
    pub fn terminate(&mut self, name: &str) {
        let pid = self.proc(name).child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for proc in self.procs.values_mut() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}
