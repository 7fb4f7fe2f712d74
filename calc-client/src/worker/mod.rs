//! A calculator worker: serves a [`Calculator`] over TLS, and (optionally) keeps a broker
//! told how busy it is.
//!
//! # Reached by its URL only
//!
//! A worker serves TLS with an [`Identity`]: generated in memory when it starts, or kept in
//! a data directory ([`load_identity`]) so that its certificate's fingerprint, and with
//! [`load_url_secret`] its whole URL, stay the same across restarts. Its server has **no
//! root object**: the calculator is registered under a sturdy URL,
//! `pbrs://<fingerprint>@<host>:<port>/<secret>` ([`Worker::url`]), and a peer that does not
//! know the URL reaches nothing. The worker publishes that URL to the broker as its address,
//! so the broker's front ends (and only they, and whoever else is given the URL) can reach
//! it; front ends connect with [`rpc_core::Client::connect_url`], which checks the pin.
//!
//! # Capacity and load
//!
//! A worker has a *capacity*: how many chunks it computes at once (by default one per CPU).
//! Each [`count_primes`](CalculatorRef::count_primes) call takes one of `capacity` slots
//! (a semaphore) for as long as it computes, on tokio's blocking pool; calls beyond the
//! capacity wait for a slot without holding a thread. Its *load* is the number of chunks it
//! has: computing or waiting. Cheap calls (`calculate`, `info`) take no slot, so they are
//! answered at once even when every slot is busy.
//!
//! # The broker link
//!
//! With [`BrokerCredentials`] (a user with the worker role), a task next to the server logs
//! in to the broker, joins, and publishes the worker's load as it changes; see [`link`] for
//! why the worker is its own scheduler and how it stays queued.

pub mod link;
pub mod outage;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use broker_server::BrokerCredentials;
use broker_server::queue::WorkerId;
use rpc_core::tls::{Identity, ServerTls};
use rpc_core::{CallError, Server, SturdyUrl};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::calculator::{Calculator, CalculatorRef, WorkerInfo, count_primes_until};
use link::BrokerLink;
pub use link::{COALESCE, FORBIDDEN_RETRY, MAX_RETRY, STALE_JUMP};

/// The host names in a generated worker certificate. Front ends pin the certificate's
/// fingerprint, so the names matter to nobody else.
const CERTIFICATE_NAMES: &[&str] = &["localhost"];

/// The file in a worker's data directory that keeps the secret of its URL.
pub const URL_SECRET_FILE: &str = "calculator-url-secret";

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The id in every answer and, as a string, the worker's id at the broker.
    pub id: u32,
    /// Chunks computed at once (at least 1).
    pub capacity: u32,
    /// The broker to log in to and join, if any: its URL and a worker user's credentials.
    pub broker: Option<BrokerCredentials>,
    /// The address (`host:port`) front ends should use to reach the worker, in its URL.
    /// `None`: the listener's own address (right for loopback and for a listener bound to one
    /// interface; not for `0.0.0.0`).
    pub advertise: Option<String>,
    /// The TLS identity to serve with. `None`: a new one generated at start (so a new
    /// fingerprint, and a new URL, each time).
    pub identity: Option<Identity>,
    /// The secret of the worker's URL. `None`: a new one at start.
    pub url_secret: Option<String>,
}

impl WorkerConfig {
    /// A worker with id `id`, one slot per CPU, and no broker.
    pub fn new(id: u32) -> Self {
        WorkerConfig {
            id,
            capacity: default_capacity(),
            broker: None,
            advertise: None,
            identity: None,
            url_secret: None,
        }
    }

    /// Sets [`capacity`](WorkerConfig::capacity).
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`broker`](WorkerConfig::broker).
    pub fn broker(mut self, credentials: BrokerCredentials) -> Self {
        self.broker = Some(credentials);
        self
    }

    /// Keeps the worker's identity and URL secret in `dir` ([`load_identity`],
    /// [`load_url_secret`]): its URL stays the same across restarts on the same address.
    pub fn data_dir(mut self, dir: &Path) -> Result<Self, CallError> {
        self.identity = Some(load_identity(dir)?);
        self.url_secret = Some(load_url_secret(dir)?);
        Ok(self)
    }
}

/// The worker identity kept in `dir`, generated there the first time
/// ([`Identity::load_or_generate`]).
pub fn load_identity(dir: &Path) -> Result<Identity, CallError> {
    Identity::load_or_generate(dir, CERTIFICATE_NAMES)
}

/// The secret of the worker's URL kept in `dir` ([`URL_SECRET_FILE`]), made and written there
/// (readable by its owner only) the first time.
pub fn load_url_secret(dir: &Path) -> Result<String, CallError> {
    let path = dir.join(URL_SECRET_FILE);
    let io_error = |what: &str, source| CallError::Io {
        context: format!("could not {what} {}", path.display()),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(secret) => return Ok(secret.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("read", e)),
    }
    let secret = SturdyUrl::new_secret()?;
    std::fs::create_dir_all(dir).map_err(|e| io_error("create the directory of", e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| io_error("create", e))?;
    std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes())
        .map_err(|e| io_error("write", e))?;
    Ok(secret)
}

/// The number of CPUs this process may use (1 if unknown): the default capacity.
pub fn default_capacity() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// The calculator object a worker serves.
struct Calc {
    id: u32,
    capacity: u32,
    slots: Arc<Semaphore>,
    load: watch::Sender<u32>,
}

/// Counts one chunk in the load while it lives.
struct LoadGuard<'a>(&'a watch::Sender<u32>);

impl<'a> LoadGuard<'a> {
    fn enter(load: &'a watch::Sender<u32>) -> Self {
        load.send_modify(|n| *n += 1);
        LoadGuard(load)
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Sets a stop flag when dropped: the handler's future was dropped (the call was cancelled),
/// so the computation on the blocking pool should stop.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a.wrapping_add(b), self.id)
    }

    async fn remote_count_primes(&self, start: u64, end: u64) -> (u64, u32) {
        let _load = LoadGuard::enter(&self.load);
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slots semaphore is never closed");
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let count = tokio::task::spawn_blocking(move || {
            // The slot is held until the computation really ends, even if the call was
            // cancelled meanwhile: capacity bounds the threads computing.
            let _slot = slot;
            count_primes_until(start, end, &stop)
        })
        .await;
        match count {
            Ok(Some(count)) => (count, self.id),
            // Only a dropped handler sets the flag, and then nobody is here to see this.
            Ok(None) => unreachable!("the stop flag is set only once this future is dropped"),
            // A panic while counting: rpc-core answers the call with a `Panicked` error.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("the runtime is shutting down; the chunk was not counted"),
        }
    }

    async fn remote_info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id,
            capacity: self.capacity,
            load: *self.load.borrow(),
        }
    }
}

/// A running worker: its server and, with a broker, its publishing task.
#[derive(Debug)]
pub struct Worker {
    id: u32,
    local_addr: SocketAddr,
    url: SturdyUrl,
    load: watch::Receiver<u32>,
    joined: watch::Receiver<bool>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    stop_link: watch::Sender<bool>,
    server: JoinHandle<()>,
    link: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts serving a calculator over TLS on `listener`, registered under the worker's URL
    /// (and logging in to the broker and joining it, if configured), in background tasks;
    /// returns at once. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When an identity cannot be generated or used, or the listener's address read.
    pub fn start(listener: TcpListener, config: WorkerConfig) -> Result<Worker, CallError> {
        let capacity = config.capacity.max(1);
        let (load_tx, load_rx) = watch::channel(0u32);
        let calc = Calc {
            id: config.id,
            capacity,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            load: load_tx,
        };
        let identity = match config.identity {
            Some(identity) => identity,
            None => Identity::generate(CERTIFICATE_NAMES)?,
        };
        let server = Server::without_root(listener)?.with_tls(ServerTls::new(identity))?;
        let secret = match config.url_secret {
            Some(secret) => secret,
            None => SturdyUrl::new_secret()?,
        };
        let mut url = server.register_with_secret(CalculatorRef::new(calc), &secret)?;
        if let Some(advertise) = config.advertise {
            url = url.with_addr(advertise);
        }
        let local_addr = server.local_addr();
        let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.run_until(async {
            let _ = server_stopped.await;
        }));
        let (joined_tx, joined) = watch::channel(false);
        let (stop_link, link_stopped) = watch::channel(false);
        let link = config.broker.map(|credentials| {
            // Named after the login, as the broker requires of a worker login's ids.
            let worker = WorkerId(format!("{}/{}", credentials.credentials.user(), config.id));
            let link = BrokerLink {
                broker: crate::shown_location(&credentials.broker),
                credentials,
                worker,
                addr: url.to_string(),
                capacity,
                load: load_rx.clone(),
                joined: joined_tx,
                stop: link_stopped,
                last_seq: 0,
            };
            tokio::spawn(link.run())
        });
        tracing::info!(id = config.id, %local_addr, ?url, capacity, "worker started");
        Ok(Worker {
            id: config.id,
            local_addr,
            url,
            load: load_rx,
            joined,
            stop_server: Some(stop_server),
            stop_link,
            server,
            link,
        })
    }

    /// The worker's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The address the worker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The worker's `pbrs://` URL: the only way to reach its calculator. It is what the
    /// worker publishes to the broker; give it to front ends that use the worker directly.
    pub fn url(&self) -> &SturdyUrl {
        &self.url
    }

    /// Chunks it has now (computing or waiting for a slot).
    pub fn load(&self) -> u32 {
        *self.load.borrow()
    }

    /// Resolves once the worker is in the broker's queue (its `join` was applied). Never
    /// resolves for a worker without a broker, or while the broker cannot be reached.
    pub async fn joined(&self) {
        let mut joined = self.joined.clone();
        let _ = joined.wait_for(|joined| *joined).await;
        if !*joined.borrow() {
            // The publishing task is gone for good: it will never join.
            std::future::pending::<()>().await;
        }
    }

    /// Stops gracefully: tells the broker the worker is removed (waiting at most a second
    /// for it), then stops accepting calls, lets the calls in flight finish (see
    /// [`rpc_core::Config::shutdown_grace`]) and closes every connection.
    pub async fn shutdown(mut self) {
        let _ = self.stop_link.send(true);
        if let Some(link) = self.link.take() {
            let _ = link.await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
        tracing::info!(id = self.id, "worker stopped");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the tasks anyway.
        if let Some(link) = &self.link {
            link.abort();
        }
        self.server.abort();
    }
}

/// `calc-worker --listen`: `host:port` as given, or a host alone on any free port
/// (`localhost` → `localhost:0`); see [`broker_server::address`].
///
/// # Errors
/// A message naming the expected form, `HOST:PORT`.
pub fn listen_address(text: &str) -> Result<String, String> {
    broker_server::address::listen_address(text, 0)
}

/// `calc-worker --advertise`: must be `host:port`, the address front ends reach the worker
/// at, which goes into its URL: a port cannot be guessed there.
///
/// # Errors
/// A message naming the expected form, with an example.
pub fn advertised_address(text: &str) -> Result<String, String> {
    broker_server::address::check_host_port(text, 8901).map(|()| text.to_owned())
}

/// Binds `listen`, prints `worker <id> listening on <addr>` and then `worker url: <url>` to
/// stdout, serves until Ctrl-C or SIGTERM, then shuts down gracefully. What the
/// `calc-worker` binary runs.
pub async fn run(listen: &str, config: WorkerConfig) -> Result<(), CallError> {
    let listener = TcpListener::bind(listen).await.map_err(|e| CallError::Io {
        context: format!("could not listen on {listen}"),
        source: e,
    })?;
    let worker = Worker::start(listener, config)?;
    let signal = crate::shutdown_signal(); // before the line: a signal after it is handled
    crate::say(&format!(
        "worker {} listening on {}",
        worker.id(),
        worker.local_addr()
    ));
    crate::say(&format!("worker url: {}", worker.url()));
    signal.await;
    tracing::info!("shutting down");
    worker.shutdown().await;
    Ok(())
}
