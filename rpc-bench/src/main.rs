//! Benchmark: what users of pbrs see, against real peers, in one run. Five subjects, each
//! with client and server in this one process over loopback TCP with `TCP_NODELAY`, all
//! making the call the issue measured, `ping(u64) -> u64`, which answers with the value it was
//! sent (a full 64-bit value, so that its encoding is as long as it gets):
//!
//! - `raw echo`: the physical baseline, a `LengthDelimitedCodec` echo of an 8-byte frame;
//! - `pbrs`: a pbrs call `ping(u64) -> u64` on a typed proxy to the root object;
//! - `pbrs-direct`: the same, but served by `Server::bind` and reached by `Client::connect`,
//!   the sockets not wrapped: it shows what the counting wrapper costs `pbrs` (which hands
//!   each wrapped socket over in halves split without a lock, `Client::over_halves` and
//!   `serve_connection_halves`, as `Client::connect` and `Server::bind` split theirs);
//! - `pbrs-tls`: pbrs over TLS the same way (an identity generated at start-up, pinned by the
//!   client; the handshake is over before measuring);
//! - `tarpc`: tarpc 0.38, a service `ping(u64) -> u64`, bincode over TCP, the server
//!   spawning each request's response future.
//!
//! Every subject is measured on a `current_thread` runtime, then again on a 2-worker
//! `multi_thread` runtime, in three patterns:
//!
//! - `sequential`: one call at a time; the median round trip;
//! - `buffer_unordered(64)`: calls per second with 64 in flight the way users write it,
//!   `stream::iter(0..n).map(|_| client.ping(value)).buffer_unordered(64)` (for the raw echo,
//!   `pipelined loop (64)`: 64 frames in flight, one sent per echo, flushed once per burst);
//! - `64 tasks`: calls per second when 64 spawned tasks each call in a loop on their clone of
//!   one client (`n/a` for the raw echo, which has no client to share).
//!
//! Each pattern is measured in 30 chunks per subject (a chunk: 1,000 sequential calls, or
//! 10,000 calls of a concurrent pattern), after a warm-up in that pattern (2,000 sequential
//! calls, or 10,000 calls). The subjects take turns chunk by chunk, in an order that runs the
//! two sides of each ratio below back to back: raw echo, pbrs, tarpc, pbrs-direct, pbrs-tls,
//! and every other turn the other way round. A figure in a table is the median of the
//! subject's chunks (a sequential chunk's value: its median round trip). Beside each
//! figure: write syscalls per call on the client's and on the server's socket (counted by a
//! wrapper around each socket; `-` where not counted: `pbrs-direct`, `pbrs-tls`), and heap
//! allocations per call, client and server together (a counting global allocator).
//!
//! Output: one table per runtime, then `tls: seq=<pbrs-tls/pbrs-direct RTT>
//! inflight64=<pbrs-tls/pbrs-direct calls/s>` (TLS against plain TCP, both set up the same
//! way), `ratios, quartiles and median: ...` (the first quartile, the median and the third
//! quartile of the ratios below, to three decimals: how much they varied, chunk pair by
//! chunk pair) and last one line exactly `ratios: seq=<pbrs/raw RTT> inflight64=<pbrs/raw
//! calls/s> vs_tarpc=<pbrs/tarpc calls/s>` (`pbrs` counted like `raw echo` and `tarpc`); all
//! from the `current_thread` runtime, their calls per second from the `buffer_unordered(64)`
//! pattern (the multi_thread figures are dominated by cross-core wake-ups on a small
//! machine). Each ratio is the median, over the 30 pairs of chunks that ran back to back, of
//! the ratio within the pair: this VM's speed changes in spells of milliseconds to seconds
//! (the raw echo's round trip reads 5.6 µs in one and 8.3 µs in the next), which move both
//! sides of a pair alike, where they would move each side's own median apart.
//!
//! Run: `cargo run --release -p rpc-bench` (`-- --quick` for a short smoke run). To profile one
//! subject, `-- --profile <raw|pbrs|pbrs-direct|pbrs-tls|tarpc> [calls] [sequential]
//! [multi_thread]` runs only its 64-in-flight pattern (or, with `sequential`, one call at a
//! time) on a `current_thread` runtime (with `multi_thread`, a 2-worker one; 2,000,000 calls
//! unless given) and prints its calls per second, e.g. under `perf record -g` or `strace -c`.
//!
//! Against Twisted Perspective Broker: `cargo run --release -p rpc-bench -- --twisted [calls]`
//! serves the seed's calculator (`calculate(a, b) -> (a + b, worker_id)`) with Twisted PB
//! (`rpc-bench/twisted/pb_calculator.py`, a server and a client process; needs `python3` with
//! Twisted, e.g. `apt-get install python3-twisted`) and with pbrs, measures both alike (the
//! median RTT of `calls` sequential calls, calls per second with 64 in flight; 10,000 calls
//! unless given) and prints a table, then last one line exactly
//! `twisted: seq=<Twisted RTT / pbrs RTT> inflight64=<pbrs calls/s / Twisted calls/s>`, both
//! how many times faster pbrs is (the `twisted` module).

mod counting;
mod harness;
mod subjects;
mod twisted;

use tokio::runtime::Runtime;

use crate::harness::{
    Measurements, Pattern, Plan, Row, paired_quartiles, paired_ratio, print_table, runtime,
};
use crate::subjects::Results;

#[global_allocator]
static ALLOCATOR: counting::CountingAlloc = counting::CountingAlloc;

/// Measures every subject on `runtime` and prints its table.
fn measure_on(name: &str, runtime: Runtime, plan: &Plan) -> Results {
    let results = runtime.block_on(Results::measure(plan));
    drop(runtime);
    let row = |name, buffered, measured: &Measurements| Row {
        name,
        buffered,
        figures: measured.figures(),
    };
    let buffered = "buffer_unordered(64)";
    print_table(
        name,
        plan.chunks,
        &[
            row("raw echo", "pipelined loop (64)", &results.raw),
            row("pbrs", buffered, &results.pbrs),
            row("pbrs-direct", buffered, &results.pbrs_direct),
            row("pbrs-tls", buffered, &results.pbrs_tls),
            row("tarpc", buffered, &results.tarpc),
        ],
    );
    results
}

/// `--profile <subject> [calls] [sequential] [multi_thread]`: one subject's 64-in-flight
/// pattern (or sequential calls), nothing else, on a current_thread runtime (or a 2-worker
/// multi_thread one).
fn profile(args: &[String]) {
    let name = args.first().map_or("", String::as_str);
    let calls = match args.get(1).map(|n| n.parse::<usize>()) {
        None => 2_000_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("--profile: the number of calls must be a positive integer");
            std::process::exit(2);
        }
    };
    let sequential = args.iter().skip(2).any(|a| a == "sequential");
    let runtime = runtime(args.iter().skip(2).any(|a| a == "multi_thread"));
    let pattern = if sequential {
        "one at a time"
    } else {
        "64 in flight"
    };
    match runtime.block_on(subjects::profile(name, calls, sequential)) {
        Some(rate) => println!("{name}: {rate:.0} calls/s ({calls} calls, {pattern})"),
        None => {
            eprintln!(
                "--profile: unknown subject {name:?}; choose one of {}",
                subjects::NAMES.join(", ")
            );
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        return profile(&args[at + 1..]);
    }
    if let Some(at) = args.iter().position(|a| a == "--twisted") {
        return twisted::run(&args[at + 1..]);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            seq_warmup: 100,
            inflight_warmup: 1_000,
            seq_calls: 200,
            inflight_calls: 1_000,
            chunks: 5,
        }
    } else {
        Plan {
            seq_warmup: 2_000,
            inflight_warmup: 10_000,
            seq_calls: 1_000,
            inflight_calls: 10_000,
            chunks: 30,
        }
    };
    let results = measure_on("current_thread", runtime(false), &plan);
    measure_on("multi_thread (2 workers)", runtime(true), &plan);

    let Results {
        raw,
        pbrs,
        pbrs_direct,
        pbrs_tls,
        tarpc,
    } = &results;
    let (seq, buffered) = (Pattern::Sequential, Pattern::Buffered);
    println!(
        "tls: seq={:.2} inflight64={:.2}",
        paired_ratio(pbrs_tls, pbrs_direct, seq),
        paired_ratio(pbrs_tls, pbrs_direct, buffered)
    );
    println!(
        "ratios, quartiles and median: seq={} inflight64={} vs_tarpc={}",
        paired_quartiles(pbrs, raw, seq),
        paired_quartiles(pbrs, raw, buffered),
        paired_quartiles(pbrs, tarpc, buffered)
    );
    println!(
        "ratios: seq={:.2} inflight64={:.2} vs_tarpc={:.2}",
        paired_ratio(pbrs, raw, seq),
        paired_ratio(pbrs, raw, buffered),
        paired_ratio(pbrs, tarpc, buffered)
    );
}
