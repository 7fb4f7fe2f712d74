//! `calc-worker`: serves a calculator over TLS; optionally logs in to a broker and joins it.
//!
//! ```text
//! calc-worker --listen 127.0.0.1:8901 --id 1 --credentials worker-1.credentials --data worker-1
//! ```
//! prints `worker 1 listening on 127.0.0.1:8901`, then `worker url: pbrs://...`, and serves
//! until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use calc_client::worker::{self, WorkerConfig};
use clap::Parser;

/// A pbrs calculator worker: counts primes for front ends, on up to CAPACITY threads.
///
/// It serves TLS only, and its calculator is reachable only through its pbrs:// URL, which
/// it prints as `worker url: pbrs://<fingerprint>@<host>:<port>/<secret>` after `worker <id>
/// listening on <addr>`. Give that URL to front ends that use the worker directly
/// (`calc-client --workers URL`); keep it as private as a password.
///
/// With broker credentials it logs in to that broker as a user with the worker role, joins
/// it (publishing its URL), keeps it told of its load, logs in again after a lost connection,
/// and leaves it on shutdown (Ctrl-C or SIGTERM). The credentials come from --credentials
/// FILE (lines `url = pbrs://...`, `user = ...`, `password = ...`, as `broker-server
/// add-user` writes them), else from the environment variables PBRS_BROKER_URL, PBRS_USER and
/// PBRS_PASSWORD when PBRS_BROKER_URL is set; never from the command line. Without either, it
/// joins no broker.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on, HOST:PORT (port 0, or a HOST alone: any free port).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:0",
        value_parser = worker::listen_address
    )]
    listen: String,
    /// The worker's id, in its answers and at the broker [default: the process id].
    #[arg(long)]
    id: Option<u32>,
    /// Chunks computed at once [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    /// The broker's URL and a worker user's name and password, in a file [default: the
    /// environment variables PBRS_BROKER_URL, PBRS_USER, PBRS_PASSWORD, if set].
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Keep the worker's TLS identity and URL secret in DIR (created if need be), so that its
    /// URL stays the same across restarts [default: new ones at each start].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The address (host:port) front ends should use, in the worker's URL [default: the
    /// listening address].
    #[arg(long, value_name = "HOST:PORT", value_parser = worker::advertised_address)]
    advertise: Option<String>,
    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Gone: see --credentials.
    #[arg(long, hide = true)]
    broker: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.broker.is_some() {
        eprintln!("error: {}", calc_client::BROKER_OPTION_GONE);
        return ExitCode::from(2);
    }
    if let Err(e) = calc_client::init_logging(&args.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut config = WorkerConfig::new(args.id.unwrap_or_else(std::process::id));
    if let Some(capacity) = args.capacity {
        config = config.capacity(capacity);
    }
    config.advertise = args.advertise;
    match calc_client::broker_credentials(args.credentials.as_deref()) {
        Ok(credentials) => config.broker = credentials,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(dir) = &args.data {
        config = match config.data_dir(dir) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    }
    match worker::run(&args.listen, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
