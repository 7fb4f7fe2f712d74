//! `fib-server`: hands out distinct Fibonacci numbers, none twice, across restarts and
//! crashes.
//!
//! ```text
//! fib-server --listen 127.0.0.1:8994 --data fib-data
//! ```
//! prints `fib-server listening on 127.0.0.1:8994` and serves until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use examples::fib::cli::{log_filter, log_to_stderr, shutdown_signal};
use examples::fib::service::FibService;

/// Serves the Fibonacci numbers 1, 2, 3, 5, 8, ... to every client that asks, never the same
/// number twice, to anyone: each number is saved durably in DIR/fib.redb before it is
/// answered, so neither a clean restart nor a crash (kill -9, power loss) hands one out
/// again. Stops cleanly on Ctrl-C or SIGTERM.
///
/// A DIR written by another program, a database of another format version, or a damaged
/// one stops it with a message saying what is wrong: it never starts from zero by itself.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on, HOST:PORT (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT", default_value = examples::fib::DEFAULT_ADDR)]
    listen: String,
    /// Directory of the server's state (created if need be; new or empty starts the
    /// sequence at 1).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Serve a non-loopback address, although the protocol is plaintext.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, value_name = "FILTER", default_value = "info", value_parser = log_filter)]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    log_to_stderr(&args.log_level);
    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("error: cannot watch for Ctrl-C and SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = match FibService::start(&args.listen, &args.data, args.insecure_plaintext).await {
        Ok(service) => service,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("fib-server listening on {}", service.local_addr());
    match service.run_until(shutdown).await {
        Ok(stats) => {
            tracing::info!(stats.numbers, stats.commits, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
