//! `broker-server`: the pbrs broker as a program.
//!
//! Parses the command line, sets up logging, binds the listener, prints
//! `broker listening on <addr>` on stdout, and serves a [`broker_server::BrokerService`] limited
//! to `--max-workers` ids with [`broker_server::run_service`] until SIGINT
//! (Ctrl-C) or SIGTERM. Everything else is in the library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The pbrs broker: hands front ends the most able worker.
///
/// Workers join over their own connection and leave the queue when it drops; schedulers
/// publish the workers' capacity and load; front ends ask for the next worker.
#[derive(Debug, Parser)]
#[command(
    name = "broker-server",
    version,
    after_help = "Once listening, prints one line `broker listening on <addr>` on stdout \
                  (with the actual port when --listen asks for port 0). Logs go to stderr. \
                  SIGINT (Ctrl-C) or SIGTERM shuts it down gracefully: calls in flight finish, \
                  connections close, and it exits 0. Exits 1 if it cannot listen, 2 on a bad \
                  command line."
)]
struct Cli {
    /// Address to listen on, HOST:PORT. Port 0 picks any free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8990")]
    listen: String,

    /// What to log: a level (error, warn, info, debug, trace) or filter directives such as
    /// `info,broker_server=debug`. Without it, RUST_LOG is used when set, else `info`.
    #[arg(long, value_name = "LEVEL", value_parser = parse_filter)]
    log_level: Option<String>,

    /// The most worker ids the broker keeps track of: queued workers plus the tombstones of
    /// removed ones (which keep late, out-of-date updates from bringing a worker back). At
    /// the limit, a new worker takes the place of the tombstone removed longest ago; when
    /// every tracked id is a queued worker, it is refused (`Full`, logged as a warning). Bounds
    /// the broker's memory whatever peers publish.
    #[arg(
        long,
        value_name = "N",
        default_value_t = broker_server::queue::DEFAULT_MAX_IDS,
        value_parser = parse_max_workers
    )]
    max_workers: usize,
}

/// A positive number of workers.
fn parse_max_workers(n: &str) -> Result<usize, String> {
    match n.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e} (expected a positive whole number)")),
    }
}

/// Accepts what [`EnvFilter`] accepts, so that a typo is reported by the command line.
fn parse_filter(directives: &str) -> Result<String, String> {
    EnvFilter::try_new(directives)
        .map(|_| directives.to_owned())
        .map_err(|e| format!("{e} (expected a level such as `info`, or directives such as `info,broker_server=debug`)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());

    // Handlers first: a signal that comes right after the "listening" line must not find the
    // default action (which would kill the process) still in place.
    let shutdown = match broker_server::shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("broker-server: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match broker_server::bind(&cli.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("broker-server: {e}; choose the address with --listen HOST:PORT");
            return ExitCode::FAILURE;
        }
    };
    let announced = listener.local_addr().and_then(|addr| {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "broker listening on {addr}")?;
        stdout.flush()
    });
    if let Err(e) = announced {
        // Whoever started us cannot learn the address: not fatal for the service itself.
        tracing::warn!("could not print the listening address on stdout: {e}");
    }
    let service = broker_server::BrokerService::with_limit(cli.max_workers);
    match broker_server::run_service(listener, service, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `--log-level`, else by RUST_LOG, else at `info`.
fn init_logging(log_level: Option<&str>) {
    let filter = match log_level {
        Some(directives) => EnvFilter::new(directives),
        None => match std::env::var("RUST_LOG") {
            Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
                .unwrap_or_else(|e| {
                    eprintln!(
                        "broker-server: ignoring RUST_LOG={directives:?} ({e}); logging at info"
                    );
                    EnvFilter::new("info")
                }),
            _ => EnvFilter::new("info"),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
