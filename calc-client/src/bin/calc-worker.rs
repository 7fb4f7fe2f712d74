//! `calc-worker`: serves a calculator on a port; optionally joins a broker.
//!
//! ```text
//! calc-worker --listen 127.0.0.1:8901 --id 1 --broker 127.0.0.1:8800
//! ```
//! prints `worker 1 listening on 127.0.0.1:8901`, and serves until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use calc_client::worker::{self, WorkerConfig};
use clap::Parser;

/// A pbrs calculator worker: counts primes for front ends, on up to CAPACITY threads.
///
/// With --broker it joins that broker, keeps it told of its load, and leaves it on shutdown
/// (Ctrl-C or SIGTERM). Prints `worker <id> listening on <addr>` once it accepts calls.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The worker's id, in its answers and at the broker [default: the process id].
    #[arg(long)]
    id: Option<u32>,
    /// Chunks computed at once [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    /// The broker to join (host:port).
    #[arg(long, value_name = "ADDR")]
    broker: Option<String>,
    /// The address front ends should use, as told to the broker [default: the listening
    /// address].
    #[arg(long, value_name = "ADDR")]
    advertise: Option<String>,
    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = calc_client::init_logging(&args.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut config = WorkerConfig::new(args.id.unwrap_or_else(std::process::id));
    if let Some(capacity) = args.capacity {
        config = config.capacity(capacity);
    }
    config.broker = args.broker;
    config.advertise = args.advertise;
    match worker::run(&args.listen, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
