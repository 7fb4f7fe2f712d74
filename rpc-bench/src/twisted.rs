//! `--twisted [calls]`: the seed's calculator served by Twisted Perspective Broker and by
//! pbrs, measured the same way, so that "pbrs against Twisted PB" is one command.
//!
//! Twisted: `twisted/pb_calculator.py` (next to this crate's `Cargo.toml`) runs as two `python3`
//! processes on loopback TCP, a server (a `pb.Root` with `remote_calculate(a, b)` returning
//! `(a + b, worker_id)`) and a client calling `callRemote("calculate", i, i)`. pbrs: the same
//! calculator as a `#[remote]` trait, served by `Server::bind` and called through
//! `Client::connect`, both on one `current_thread` runtime in this process. Both with
//! `TCP_NODELAY`, both measured in two patterns, each after a tenth as many calls of warm-up:
//! `calls` sequential calls (the median round trip) and `calls` calls with 64 in flight, one
//! started as each finishes (calls per second; pbrs's is `buffer_unordered(64)`).
//!
//! Output: a table (system, version, sequential RTT, 64-in-flight calls/s), then one line
//! exactly `twisted: seq=<Twisted RTT / pbrs RTT> inflight64=<pbrs calls/s / Twisted calls/s>`:
//! both how many times faster pbrs is.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use futures::FutureExt;
use rpc_core::{CallError, Client, Server, remote};

use crate::harness::{Figures, Measurements, Plan, runtime};
use crate::subjects::{Caller, Shared};

/// The Twisted PB calculator: `server PORT` and `client PORT CALLS`.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/twisted/pb_calculator.py");
/// The Python interpreter, looked up on `PATH`.
const PYTHON: &str = "python3";
/// Calls per pattern unless given: Twisted makes a few thousand calls per second, so the
/// whole mode takes some seconds.
const DEFAULT_CALLS: usize = 10_000;
/// How to get Twisted, for the error messages.
const INSTALL: &str = concat!(
    "install Twisted: `apt-get install python3-twisted` (brings Python 3 too) ",
    "or `pip install twisted`"
);
/// The id our calculator answers with, as the Python one does.
const WORKER_ID: u32 = 1;

/// A calculator worker (Twisted PB's classic `Calculator(pb.Root)`).
#[remote]
pub(crate) trait Calculator {
    /// Adds `a` and `b`; returns the sum and the id of the worker that did it.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
}

/// The calculator pbrs serves.
struct Calc;

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, WORKER_ID)
    }
}

/// A proxy to the calculator and the next call's argument: like the Python client, call `i`
/// is `calculate(i, i)`.
#[derive(Clone)]
struct CalculatorCaller {
    calculator: CalculatorRef,
    next: Arc<AtomicI64>,
}

impl Caller for CalculatorCaller {
    /// The argument `i` of the call, and its answer.
    type Answer = (i64, Result<(i64, u32), CallError>);

    fn call(&self) -> impl Future<Output = Self::Answer> + Send + '_ {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.calculator
            .calculate(i, i)
            .map(move |answer| (i, answer))
    }

    fn check((i, answer): Self::Answer) {
        let answer = answer.expect("a call to the pbrs calculator failed");
        assert_eq!(
            answer,
            (2 * i, WORKER_ID),
            "calculate({i}, {i}) answered wrong"
        );
    }
}

/// One system's figures.
struct Measured {
    /// What it is and its version, for the table.
    version: String,
    /// Median round trip of sequential calls, µs.
    seq_us: f64,
    /// Calls per second with 64 in flight.
    inflight64: f64,
}

/// The Twisted server process: killed and reaped when dropped, on error paths too.
struct TwistedServer(Child);

impl Drop for TwistedServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `--twisted [calls]` and prints its table; exits with status 2 on a bad argument or
/// when Python or Twisted is missing, 1 when the measurement fails.
pub(crate) fn run(args: &[String]) {
    let calls = match args.first().map(|n| n.parse::<usize>()) {
        None => DEFAULT_CALLS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => fail(
            2,
            "--twisted: the number of calls must be a positive integer",
        ),
    };
    if let Err(missing) = check_twisted() {
        fail(2, &format!("--twisted: {missing}"));
    }
    let twisted = match measure_twisted(calls) {
        Ok(measured) => measured,
        Err(error) => fail(1, &format!("--twisted: {error}")),
    };
    let pbrs = measure_pbrs(calls);

    println!("== Twisted PB against pbrs: the calculator, {calls} calls per pattern ==");
    println!(
        "{:<12} {:<26} {:>16} {:>18}",
        "system", "version", "sequential RTT", "64 in flight"
    );
    for (system, m) in [("Twisted PB", &twisted), ("pbrs", &pbrs)] {
        println!(
            "{system:<12} {:<26} {:>13.1} µs {:>11.0} calls/s",
            m.version, m.seq_us, m.inflight64
        );
    }
    println!(
        "twisted: seq={:.2} inflight64={:.2}",
        twisted.seq_us / pbrs.seq_us,
        pbrs.inflight64 / twisted.inflight64
    );
}

/// Prints `message` to stderr and exits with `status`.
fn fail(status: i32, message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(status);
}

/// Checks that the script is there and that `python3` runs and imports Twisted.
fn check_twisted() -> Result<(), String> {
    if !std::path::Path::new(SCRIPT).is_file() {
        return Err(format!(
            "{SCRIPT} is missing: run rpc-bench from the pbrs source tree"
        ));
    }
    let import = Command::new(PYTHON)
        .args(["-c", "import twisted"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match import {
        Ok(status) if status.success() => Ok(()),
        Ok(_) => Err(format!("{PYTHON} cannot import twisted; {INSTALL}")),
        Err(e) => Err(format!(
            "could not run {PYTHON} ({e}): Twisted PB needs Python 3 on PATH; {INSTALL}"
        )),
    }
}

/// Starts the Twisted server on a free port, runs the Twisted client against it, and parses
/// the client's line `twisted version=V python=P seq_us=S inflight64=R`.
fn measure_twisted(calls: usize) -> Result<Measured, String> {
    let mut server = Command::new(PYTHON)
        .args([SCRIPT, "server", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map(TwistedServer)
        .map_err(|e| format!("could not start the Twisted server: {e}"))?;
    let stdout = server
        .0
        .stdout
        .take()
        .expect("the server's stdout is piped");
    let mut ready = String::new();
    BufReader::new(stdout)
        .read_line(&mut ready)
        .map_err(|e| format!("could not read the Twisted server's output: {e}"))?;
    if ready.is_empty() {
        return Err("the Twisted server exited before it listened; its errors are above".into());
    }
    let port = ready
        .trim()
        .strip_prefix("listening on ")
        .and_then(|port| port.parse::<u16>().ok())
        .ok_or_else(|| {
            format!("the Twisted server said {ready:?}, not `listening on <port>` (see above)")
        })?;

    let client = Command::new(PYTHON)
        .args([SCRIPT, "client", &port.to_string(), &calls.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start the Twisted client: {e}"))?;
    drop(server);
    if !client.status.success() {
        return Err(format!(
            "the Twisted client failed ({}); its errors are above",
            client.status
        ));
    }
    let output = String::from_utf8_lossy(&client.stdout);
    parse_twisted(&output).ok_or_else(|| {
        format!(
            "the Twisted client printed no line `twisted version=V python=P seq_us=S \
             inflight64=R`, its output: {output:?}"
        )
    })
}

/// The figures in the client's output line, `None` if it has none or they are malformed.
fn parse_twisted(output: &str) -> Option<Measured> {
    let line = output.lines().find_map(|l| l.strip_prefix("twisted "))?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    Some(Measured {
        version: format!("{} (Python {})", field("version")?, field("python")?),
        seq_us: field("seq_us")?.parse().ok()?,
        inflight64: field("inflight64")?.parse().ok()?,
    })
}

/// Serves the calculator with `Server::bind`, connects with `Client::connect`, and measures
/// it with the harness on a `current_thread` runtime (its 64-tasks pattern runs too, not
/// shown: Twisted's client has no counterpart).
fn measure_pbrs(calls: usize) -> Measured {
    let runtime = runtime(false);
    let plan = Plan {
        seq_warmup: calls / 10,
        inflight_warmup: calls / 10,
        seq_calls: calls,
        inflight_calls: calls,
        chunks: 1,
    };
    let figures: Figures = runtime.block_on(async {
        let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc))
            .await
            .expect("could not bind the pbrs calculator to a loopback port");
        let addr = server.local_addr().to_string();
        tokio::spawn(server.run());
        let client = Client::connect(&addr)
            .await
            .expect("could not connect to the pbrs calculator");
        let calculator = client
            .root::<CalculatorRef>()
            .await
            .expect("could not get the pbrs calculator's root");
        let next = Arc::new(AtomicI64::new(0));
        let mut subject = Shared {
            client: CalculatorCaller { calculator, next },
            writes: None,
        };
        Measurements::alone(&mut subject, &plan).await.figures()
    });
    Measured {
        version: format!("{} (Rust)", env!("CARGO_PKG_VERSION")),
        seq_us: figures.seq.value,
        inflight64: figures.buffered.value,
    }
}
