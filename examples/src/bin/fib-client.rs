//! `fib-client`: takes numbers from a `fib-server` and prints them, one a line, going on
//! across restarts of the server until it has them all.
//!
//! ```text
//! fib-client --server 127.0.0.1:8994 --count 10
//! ```

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use examples::fib::cli::{log_filter, log_to_stderr};
use num_bigint::BigUint;

/// Takes COUNT numbers from a fib-server and prints each on its own line as it arrives.
/// When the connection is lost (the server restarts, say) it reconnects by itself and goes
/// on until it has COUNT; a number lost on the way is skipped by the server, never repeated.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The fib-server's address, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", default_value = examples::fib::DEFAULT_ADDR)]
    server: String,
    /// How many numbers to take.
    #[arg(long, value_name = "N", default_value_t = 10)]
    count: u64,
    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, value_name = "FILTER", default_value = "warn", value_parser = log_filter)]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    log_to_stderr(&args.log_level);
    let mut stdout = std::io::stdout().lock();
    let print = |number: &BigUint| {
        writeln!(stdout, "{number}")?;
        stdout.flush()
    };
    match examples::fib::client::take(&args.server, args.count, print).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
