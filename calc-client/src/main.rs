//! `calc-client`: counts the primes below N on a set of workers.
//!
//! ```text
//! calc-client                                   # in-process broker + 3 workers, default job
//! calc-client --credentials front-end.credentials --limit 50000000
//! PBRS_BROKER_URL=pbrs://... PBRS_USER=... PBRS_PASSWORD=... calc-client
//! calc-client --workers pbrs://...,pbrs://... --chunk 250000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use calc_client::frontend::{Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use clap::{Parser, ValueEnum};

/// Counts the primes below LIMIT, spread in chunks over calculator workers, and prints a
/// per-worker table and `total: <n>`.
///
/// With --workers it uses those workers directly, by the pbrs:// URLs they print (`worker
/// url: pbrs://...`). Else, with broker credentials, it logs in to that broker as a user with
/// the front-end role and asks it for the most able worker before each chunk. The credentials
/// come from --credentials FILE (lines `url = pbrs://...`, `user = ...`, `password = ...`, as
/// `broker-server add-user` writes them), else from the environment variables
/// PBRS_BROKER_URL, PBRS_USER and PBRS_PASSWORD when PBRS_BROKER_URL is set; never from the
/// command line. With neither, it starts a broker and three workers in this process (over TLS
/// on loopback ports, with generated users and passwords) and runs the job through them.
///
/// Every connection is TLS, pinned to the fingerprint in the URL. Chunks of a worker that
/// dies are sent to the others; the job fails only when no worker is left. A few chunks are
/// recomputed locally to check the workers' answers. Progress goes to stderr as a bar on a
/// terminal, else to stdout as `progress: <done>/<total> chunks` lines.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Worker URLs to use directly, comma-separated (pbrs://...,pbrs://...).
    #[arg(
        long,
        value_name = "URLS",
        value_delimiter = ',',
        num_args = 1..,
        conflicts_with = "credentials"
    )]
    workers: Vec<String>,
    /// The broker's URL and a front-end user's name and password, in a file [default: the
    /// environment variables PBRS_BROKER_URL, PBRS_USER, PBRS_PASSWORD, if set].
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
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
    /// Gone: see --credentials.
    #[arg(long, hide = true)]
    broker: Option<String>,
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
    if args.broker.is_some() {
        eprintln!("error: {}", calc_client::BROKER_OPTION_GONE);
        return ExitCode::from(2);
    }
    if let Err(e) = calc_client::init_logging(&args.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut job = Job::new(args.limit);
    if let Some(chunk) = args.chunk {
        job = job.with_chunk(chunk);
    }
    let workers = if args.workers.is_empty() {
        match calc_client::broker_credentials(args.credentials.as_deref()) {
            Ok(credentials) => credentials.map(Workers::Broker),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        Some(Workers::Direct(args.workers))
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
