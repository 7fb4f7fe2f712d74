//! `broker-server`: the pbrs broker as a program.
//!
//! `broker-server [serve options]` serves: it opens the data directory (`--data`), binds the
//! listener, prints `broker listening on <addr>` (and, over TLS, `broker url: pbrs://...`) on
//! stdout, and serves a [`broker_server::BrokerService`] behind a login until SIGINT (Ctrl-C)
//! or SIGTERM. With `--http ADDR` it also serves a status page and metrics there (see
//! [`broker_server::http`]) and prints `http: http://<addr>/` after those lines; it installs
//! the process's Prometheus recorder for them. `broker-server add-user` adds a user to the data directory and prints what
//! that worker or front end needs. Everything else is in the library.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use broker_server::access::{ENV_PASSWORD, ENV_URL, ENV_USER, credentials_file};
use broker_server::{Access, BrokerService, DataDir, HttpSide, Role, address, telemetry};
use clap::{Parser, Subcommand};
use rpc_core::SturdyUrl;
use tracing_subscriber::EnvFilter;

/// The pbrs broker: hands front ends the most able worker.
///
/// Workers log in and join over their own connection, and leave the queue when it drops;
/// they publish their capacity and load; front ends log in and ask for the next worker. The
/// broker serves TLS with an identity kept in its data directory; its users (name, role,
/// argon2 password hash) live there too: add them with `broker-server add-user`.
#[derive(Debug, Parser)]
#[command(
    name = "broker-server",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Once listening, prints `broker listening on <addr>` on stdout (with the actual \
                  port when --listen asks for port 0), then, over TLS, `broker url: \
                  pbrs://<fingerprint>@<addr>/<secret>`: what workers and front ends connect to; \
                  with --http, then `http: http://<addr>/`. Logs go to stderr. SIGINT (Ctrl-C) \
                  or SIGTERM shuts it down gracefully (the HTTP side too): calls in flight \
                  finish, connections close, and it exits 0. Exits 1 if it cannot listen or \
                  read its data directory, 2 on a bad command line."
)]
struct Cli {
    #[command(flatten)]
    serve: Serve,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address to listen on, HOST:PORT. Port 0 picks any free port; a HOST alone listens on
    /// port 8990.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8990",
        value_parser = address::broker_listen_address
    )]
    listen: String,

    /// The data directory: the TLS identity, the URL's secret and the users. Created (with
    /// a new identity) if it does not exist.
    #[arg(long, value_name = "DIR", default_value = "broker-data")]
    data: PathBuf,

    /// Serve without TLS; only on a loopback address, where nothing crosses a network.
    #[arg(long)]
    plaintext: bool,

    /// Serve without TLS on any address, and check passwords sent in clear from other hosts.
    /// Anyone on the path can read them and impersonate the broker: only for networks you
    /// trust entirely.
    #[arg(long, conflicts_with = "plaintext")]
    insecure_plaintext: bool,

    /// The HOST:PORT clients reach the broker at, for the printed URL (default: the address
    /// it listens on).
    #[arg(long, value_name = "HOST:PORT", value_parser = address::advertised_address)]
    advertise: Option<String>,

    /// Also serve HTTP on ADDR (PORT alone: 127.0.0.1:PORT): a live status page at `/`, its
    /// data at `/status.json`, Prometheus metrics at `/metrics` and `/healthz`. Off unless
    /// given.
    #[arg(long, value_name = "ADDR", value_parser = address::http_listen_address)]
    http: Option<String>,

    /// What to log: a level (error, warn, info, debug, trace) or filter directives such as
    /// `info,broker_server=debug`. Without it, RUST_LOG is used when set, else `info`.
    #[arg(long, value_name = "LEVEL", value_parser = parse_filter)]
    log_level: Option<String>,

    /// The most worker ids the broker keeps track of: queued workers plus the tombstones of
    /// removed ones (which keep late, out-of-date updates from bringing a worker back). At
    /// the limit, a new worker takes the place of the tombstone removed longest ago; when
    /// every tracked id is a queued worker, it is refused (`Full`, logged as a warning).
    #[arg(
        long,
        value_name = "N",
        default_value_t = broker_server::queue::DEFAULT_MAX_IDS,
        value_parser = parse_positive
    )]
    max_workers: usize,

    /// The most worker ids one worker login may own.
    #[arg(
        long,
        value_name = "N",
        default_value_t = broker_server::ownership::DEFAULT_MAX_WORKERS_PER_IDENTITY
    )]
    max_workers_per_identity: u32,

    /// Keepalive: after SECS without a frame from a peer (a worker, a front end), ping it.
    /// A worker whose host vanishes without closing its connection (a cut link, a crashed
    /// machine) leaves the queue once keepalive gives up on it: SECS plus
    /// --keepalive-timeout after the last frame it sent.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_seconds)]
    keepalive_interval: Duration,

    /// Keepalive: close a connection whose peer sends nothing, not even the answer to a
    /// ping, for SECS after the ping.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    keepalive_timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds a user (or gives an existing one a new password) and prints what it needs to
    /// connect: the broker's URL, its user name and its new password (shown only now). A
    /// running broker reads its users when it starts: restart it to let the user in.
    AddUser {
        /// The user name: letters, digits, '.', '_' or '-'.
        name: String,
        /// What the user may do: front-end (ask for workers), worker (join and publish for
        /// its own worker ids), admin (everything, e.g. remove any worker).
        #[arg(long)]
        role: Role,
        /// The data directory of the broker.
        #[arg(long, value_name = "DIR", default_value = "broker-data")]
        data: PathBuf,
        /// The HOST:PORT clients reach the broker at, for the printed URL.
        #[arg(
            long,
            value_name = "HOST:PORT",
            default_value = "127.0.0.1:8990",
            value_parser = address::advertised_address
        )]
        advertise: String,
        /// Write the credentials to this file (readable by its owner only; for
        /// `calc-worker --credentials FILE`) instead of printing them.
        #[arg(long, value_name = "FILE")]
        credentials_file: Option<PathBuf>,
    },
}

/// A positive number.
fn parse_positive(n: &str) -> Result<usize, String> {
    match n.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e} (expected a positive whole number)")),
    }
}

/// A positive number of seconds, up to a day.
fn parse_seconds(secs: &str) -> Result<Duration, String> {
    const DAY: u64 = 24 * 60 * 60;
    match parse_positive(secs).map(u64::try_from) {
        Ok(Ok(secs)) if secs <= DAY => Ok(Duration::from_secs(secs)),
        Ok(_) => Err(format!("must be at most {DAY} (a day)")),
        Err(e) => Err(e),
    }
}

/// Accepts what [`EnvFilter`] accepts, so that a typo is reported by the command line.
fn parse_filter(directives: &str) -> Result<String, String> {
    EnvFilter::try_new(directives)
        .map(|_| directives.to_owned())
        .map_err(|e| format!("{e} (expected a level such as `info`, or directives such as `info,broker_server=debug`)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::AddUser {
            name,
            role,
            data,
            advertise,
            credentials_file,
        }) => add_user(&name, role, &data, &advertise, credentials_file),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("broker-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn add_user(
    name: &str,
    role: Role,
    data: &std::path::Path,
    advertise: &str,
    credentials_out: Option<PathBuf>,
) -> Result<(), String> {
    let data = DataDir::open(data)?;
    let password = data.add_user(name, role)?;
    let url = broker_url(&data, advertise)?;
    println!(
        "added user {name} with role {role} to {}",
        data.path().display()
    );
    println!("broker url: {url}");
    match credentials_out {
        Some(path) => {
            let text = credentials_file(&url.to_string(), name, &password);
            broker_server::access::write_credentials(&path, &text)?;
            println!(
                "credentials written to {} (keep it private)",
                path.display()
            );
        }
        None => {
            println!("{ENV_URL}={url}");
            println!("{ENV_USER}={name}");
            println!("{ENV_PASSWORD}={password}");
        }
    }
    Ok(())
}

/// The broker's URL at `addr`, from the identity and secret of `data`.
fn broker_url(data: &DataDir, addr: &str) -> Result<SturdyUrl, String> {
    let fingerprint = data.identity()?.fingerprint();
    let url = format!("pbrs://{fingerprint}@127.0.0.1:1/{}", data.url_secret()?);
    let url: SturdyUrl = url
        .parse()
        .map_err(|e: rpc_core::CallError| e.to_string())?;
    advertise(url, addr)
}

#[tokio::main]
async fn serve(cli: Serve) -> Result<(), String> {
    init_logging(cli.log_level.as_deref());
    let data = DataDir::open(&cli.data)?;
    let users = data.users()?;
    if users.is_empty() {
        tracing::warn!(
            "no users in {}: nobody can log in; add some with `broker-server add-user`",
            data.path().display()
        );
    }
    // Handlers first: a signal that comes right after the "listening" line must not find the
    // default action (which would kill the process) still in place.
    let shutdown = broker_server::shutdown_signal()
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    let listener = broker_server::bind(&cli.listen)
        .await
        .map_err(|e| format!("{e}; choose the address with --listen HOST:PORT"))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    if cli.advertise.is_some() && (cli.plaintext || cli.insecure_plaintext) {
        return Err(
            "--advertise names the address in the broker's pbrs:// URL, which only a \
                    TLS broker has; drop it, or drop --plaintext/--insecure-plaintext"
                .into(),
        );
    }
    let access = if cli.insecure_plaintext {
        tracing::warn!("serving without TLS (--insecure-plaintext): passwords travel in clear");
        Access::plaintext(users).allow_plaintext_passwords()
    } else if cli.plaintext {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "refusing to serve {addr} without TLS: passwords and calls would cross the \
                 network in clear. Drop --plaintext to serve TLS, or pass --insecure-plaintext \
                 if this network is entirely trusted"
            ));
        }
        Access::plaintext(users)
    } else {
        Access::tls(users, data.identity()?).url_secret(data.url_secret()?)
    };
    let service = BrokerService::with_limit(cli.max_workers)
        .with_max_workers_per_identity(cli.max_workers_per_identity);
    let http = match &cli.http {
        Some(http_addr) => Some(http_side(http_addr, &service).await?),
        None => None,
    };
    let (server, url) =
        broker_server::serve(listener, service, &access).map_err(|e| e.to_string())?;
    let server = server.with_config(
        rpc_core::Config::default().keepalive(cli.keepalive_interval, cli.keepalive_timeout),
    );
    let mut lines = vec![format!("broker listening on {addr}")];
    if let Some(url) = url {
        let url = match &cli.advertise {
            Some(advertised) => advertise(url, advertised)?,
            None => url,
        };
        lines.push(format!("broker url: {url}"));
    }
    if let Some(http) = &http {
        let addr = http
            .local_addr()
            .map_err(|e| format!("cannot read the HTTP address: {e}"))?;
        lines.push(format!("http: http://{addr}/"));
    }
    announce(&lines);
    broker_server::run_server_with_http(server, http, shutdown).await;
    Ok(())
}

/// The HTTP side on `addr`, with the process's Prometheus recorder, installed here.
async fn http_side(addr: &str, service: &BrokerService) -> Result<HttpSide, String> {
    let metrics = telemetry::install_prometheus()?;
    let listener = broker_server::bind(addr)
        .await
        .map_err(|e| format!("{e}; choose the HTTP address with --http ADDR"))?;
    Ok(HttpSide::new(listener, service.clone(), Some(metrics)))
}

/// `url` at the address `advertised`, which must be `host:port`.
fn advertise(url: SturdyUrl, advertised: &str) -> Result<SturdyUrl, String> {
    let moved = url.with_addr(advertised).to_string();
    moved
        .parse()
        .map_err(|_| format!("--advertise {advertised:?} is not HOST:PORT"))
}

/// Prints `lines` on stdout at once (whoever started us may be waiting for them).
fn announce(lines: &[String]) {
    let mut stdout = std::io::stdout().lock();
    let printed = lines
        .iter()
        .try_for_each(|line| writeln!(stdout, "{line}"))
        .and_then(|()| stdout.flush());
    if let Err(e) = printed {
        // Whoever started us cannot learn the address: not fatal for the service itself.
        tracing::warn!("could not print the listening address on stdout: {e}");
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
