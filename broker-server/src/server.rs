//! Serving a broker: [`run`] on a listener until a shutdown future resolves (what the
//! `broker-server` binary and the tests do), and [`spawn`] to start one in the background of
//! any tokio program (what the calculation demo does).
//!
//! Both serve a [`BrokerService`] behind a login object (see [`crate::access`]), through
//! [`rpc_core::Server`], over TLS or plaintext as the [`Access`] says, and shut down
//! gracefully: stop accepting, let the calls in flight finish (up to
//! [`rpc_core::Config::shutdown_grace`]), close every connection. Workers tied to those
//! connections leave the queue as they close.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use broker_server::{Access, BrokerCredentials, Role, Users};
//!
//! // In process, on any free loopback port, in plaintext (logins from this host only):
//! let users = Users::new();
//! users.add("fe", Role::FrontEnd, "secret")?;
//! let running = broker_server::spawn("127.0.0.1:0", Access::plaintext(users)).await?;
//!
//! // Workers and front ends log in at `running.location()`.
//! let broker = BrokerCredentials::new(running.location(), "fe", "secret").connect().await?;
//! assert_eq!(broker.next_worker().await?, Ok(None));
//!
//! running.shutdown().await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use rpc_core::{CallError, Server, SturdyUrl};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::access::Access;
use crate::broker::BrokerRef;
use crate::http::HttpSide;
use crate::service::BrokerService;

/// Serves a fresh [`BrokerService`] on `listener` with `access` until `shutdown` resolves,
/// then shuts down gracefully (see the [module docs](self)).
///
/// # Errors
/// When the TLS identity cannot be used, or the listener's address cannot be read. Errors
/// on single connections are logged and never end the service.
pub async fn run(
    listener: TcpListener,
    access: Access,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CallError> {
    run_service(listener, BrokerService::new(), access, shutdown).await
}

/// Like [`run`], serving `service`: keep a clone of it to look at the queue or
/// [`subscribe`](BrokerService::subscribe) to its events while it is served.
///
/// # Errors
/// As [`run`].
pub async fn run_service(
    listener: TcpListener,
    service: BrokerService,
    access: Access,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CallError> {
    let (server, _) = serve(listener, service, &access)?;
    run_server(server, shutdown).await;
    Ok(())
}

/// The server of a broker. Over TLS it has no root: its login object is registered under the
/// broker's `pbrs://` URL, which it returns. In plaintext (loopback, or by explicit opt-in) the
/// login object is its root.
pub fn serve(
    listener: TcpListener,
    service: BrokerService,
    access: &Access,
) -> Result<(Server, Option<SturdyUrl>), CallError> {
    let login = access.login(service);
    let Some(tls) = &access.tls else {
        return Ok((Server::from_listener(listener, login)?, None));
    };
    // Over TLS the login object is reached by the URL only: no root, so knowing the address
    // and the fingerprint (which a wrong pin reveals) is not enough.
    let server = Server::without_root(listener)?.with_tls(tls.clone())?;
    let url = match &access.url_secret {
        Some(secret) => server.register_with_secret(login, secret)?,
        None => server.register(login)?,
    };
    Ok((server, Some(url)))
}

/// Serves `server` (from [`serve`]) until `shutdown` resolves.
pub async fn run_server(server: Server, shutdown: impl Future<Output = ()>) {
    let addr = server.local_addr();
    let tls = if server.fingerprint().is_some() {
        "TLS"
    } else {
        "plaintext"
    };
    tracing::info!(%addr, "broker serving ({tls})");
    server.run_until(shutdown).await;
    tracing::info!(%addr, "broker stopped");
}

/// Serves `server` (from [`serve`]) and, when given, its [`HttpSide`] until `shutdown`
/// resolves, then shuts both down gracefully. An HTTP side that fails is logged and leaves
/// the broker serving.
pub async fn run_server_with_http(
    server: Server,
    http: Option<HttpSide>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, _) = watch::channel(false);
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        // Also resolves when the sender is gone.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let signal = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    let http = async {
        let Some(http) = http else { return };
        if let Err(e) = http.run(until_stopped(stop.subscribe())).await {
            tracing::warn!("the HTTP side stopped: {e}");
        }
    };
    tokio::join!(
        signal,
        run_server(server, until_stopped(stop.subscribe())),
        http
    );
}

/// Binds `addr` (port 0 for any free port) and serves a fresh broker there with `access` in a
/// background task, until [`RunningBroker::shutdown`] (or until the [`RunningBroker`] is
/// dropped).
///
/// # Errors
/// When `addr` cannot be bound (the message names the address) or the TLS identity cannot
/// be used.
pub async fn spawn(addr: impl ToSocketAddrs, access: Access) -> io::Result<RunningBroker> {
    let listener = bind(addr).await?;
    spawn_on(listener, BrokerService::new(), access)
}

/// Like [`spawn`], serving `service` on an already bound `listener`.
///
/// # Errors
/// If the listener's address cannot be read, or the TLS identity cannot be used.
pub fn spawn_on(
    listener: TcpListener,
    service: BrokerService,
    access: Access,
) -> io::Result<RunningBroker> {
    spawn_with_http(listener, service, access, None)
}

/// Like [`spawn_on`], with an HTTP side (see [`crate::http`]) that shuts down with the
/// broker: at [`RunningBroker::http_addr`].
///
/// # Errors
/// As [`spawn_on`], or if the HTTP listener's address cannot be read.
pub fn spawn_with_http(
    listener: TcpListener,
    service: BrokerService,
    access: Access,
    http: Option<HttpSide>,
) -> io::Result<RunningBroker> {
    let local_addr = listener.local_addr()?;
    let http_addr = http.as_ref().map(HttpSide::local_addr).transpose()?;
    let (server, url) =
        serve(listener, service.clone(), &access).map_err(|e| io::Error::other(e.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_server_with_http(server, http, async move {
            // A dropped sender (the `RunningBroker` dropped) stops the broker too.
            let _ = stopped.await;
        })
        .await;
        Ok(())
    });
    Ok(RunningBroker {
        local_addr,
        http_addr,
        url,
        service,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Binds a TCP listener on `addr`, with an error that says which address failed and what
/// to try.
///
/// # Errors
/// When the address does not resolve or cannot be bound (in use, not local, no permission).
pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    // `ToSocketAddrs` cannot be displayed; resolve first to name the address in errors.
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("could not resolve the address to listen on: {e}"),
            )
        })?
        .collect();
    TcpListener::bind(addrs.as_slice()).await.map_err(|e| {
        let shown = match addrs.as_slice() {
            [one] => one.to_string(),
            many => format!("{many:?}"),
        };
        let hint = match e.kind() {
            io::ErrorKind::AddrInUse => {
                " (is another broker running there? pick another port, or 0 for any free one)"
            }
            io::ErrorKind::AddrNotAvailable => " (that address is not one of this host's)",
            io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        io::Error::new(e.kind(), format!("could not listen on {shown}: {e}{hint}"))
    })
}

/// A broker serving in a background task, from [`spawn`] or [`spawn_on`].
///
/// Dropping it starts the shutdown without waiting for it; [`shutdown`](Self::shutdown)
/// waits until every connection is closed.
#[derive(Debug)]
pub struct RunningBroker {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    url: Option<SturdyUrl>,
    service: BrokerService,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), CallError>>>,
}

impl RunningBroker {
    /// The address the broker listens on: what workers, schedulers and front ends connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of its HTTP side, when it has one ([`spawn_with_http`]).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The broker's `pbrs://` URL (its login object, over TLS); `None` for a plaintext
    /// broker, reached at [`local_addr`](Self::local_addr).
    pub fn url(&self) -> Option<&SturdyUrl> {
        self.url.as_ref()
    }

    /// Where clients reach the broker: its URL over TLS, else its address.
    pub fn location(&self) -> String {
        match &self.url {
            Some(url) => url.to_string(),
            None => self.local_addr.to_string(),
        }
    }

    /// The service being served: the queue, in process.
    pub fn service(&self) -> &BrokerService {
        &self.service
    }

    /// A [`BrokerRef`] that calls the service directly, in process (no connection: a
    /// [`join`](BrokerRef::join) through it ties the worker to nothing).
    pub fn broker(&self) -> BrokerRef {
        BrokerRef::new(self.service.clone())
    }

    /// Shuts the broker down gracefully and waits until it has: no longer accepting, calls in
    /// flight finished, every connection closed.
    ///
    /// # Panics
    /// If the serving task panicked (a bug), the panic is resumed here.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return;
        };
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the broker stopped with an error: {e}"),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {} // cancelled: the runtime is shutting down
        }
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM; elsewhere than Unix, on Ctrl-C.
///
/// The handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives in between is not lost (nor does it kill the process).
///
/// # Errors
/// If a signal handler cannot be installed.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            let which = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!("{which} received: shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::warn!("cannot wait for Ctrl-C ({e}); shutting down");
                return;
            }
            tracing::info!("Ctrl-C received: shutting down");
        })
    }
}
