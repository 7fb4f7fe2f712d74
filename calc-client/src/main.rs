//! `calc-client`: counts the primes below N on a set of workers.
//!
//! ```text
//! calc-client                                   # in-process broker + 3 workers, default job
//! calc-client --broker 127.0.0.1:8800 --limit 50000000
//! calc-client --workers 127.0.0.1:8901,127.0.0.1:8902 --chunk 250000
//! ```

use std::process::ExitCode;

use calc_client::frontend::{Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use clap::{Parser, ValueEnum};

/// Counts the primes below LIMIT, spread in chunks over calculator workers, and prints a
/// per-worker table and `total: <n>`.
///
/// With no --workers and no --broker it starts a broker and three workers in this process
/// (on loopback ports) and runs the job through them. With --broker it asks that broker for
/// the most able worker before each chunk; with --workers it uses those workers directly.
/// Chunks of a worker that dies are sent to the others; the job fails only when no worker is
/// left. A few chunks are recomputed locally to check the workers' answers. Progress goes to
/// stderr as a bar on a terminal, else to stdout as `progress: <done>/<total> chunks` lines.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Worker addresses to use directly, comma-separated (host:port,host:port,...).
    #[arg(long, value_name = "ADDRS", value_delimiter = ',', num_args = 1.., conflicts_with = "broker")]
    workers: Vec<String>,
    /// The broker to ask for workers (host:port).
    #[arg(long, value_name = "ADDR")]
    broker: Option<String>,
    /// Count the primes below this number.
    #[arg(long, value_name = "N", default_value_t = Job::DEFAULT_LIMIT)]
    limit: u64,
    /// Numbers per chunk [default: LIMIT/200, at least 1000].
    #[arg(long, value_name = "SIZE", value_parser = clap::value_parser!(u64).range(1..))]
    chunk: Option<u64>,
    /// Chunks to recompute locally to check the workers' answers.
    #[arg(long, value_name = "K", default_value_t = 3)]
    checks: usize,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Progress {
    /// A bar if stderr is a terminal, lines on stdout otherwise.
    Auto,
    /// A bar on stderr.
    Bar,
    /// `progress: <done>/<total> chunks` lines on stdout.
    Lines,
    /// Nothing.
    Quiet,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = calc_client::init_logging(&args.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut job = Job::new(args.limit);
    if let Some(chunk) = args.chunk {
        job = job.with_chunk(chunk);
    }
    let workers = match (args.workers.is_empty(), args.broker) {
        (false, _) => Some(Workers::Direct(args.workers)),
        (true, Some(broker)) => Some(Workers::Broker(broker)),
        (true, None) => None,
    };
    let options = Options::default()
        .checks(args.checks)
        .progress(match args.progress {
            Progress::Auto => ProgressMode::Auto,
            Progress::Bar => ProgressMode::Bar,
            Progress::Lines => ProgressMode::Lines,
            Progress::Quiet => ProgressMode::Quiet,
        });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(calc_client::client_main(workers, job, &options)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
