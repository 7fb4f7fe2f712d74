//! [`Server`]: a TCP listener whose connections all see one root object, and
//! [`serve_connection`] to serve that root over any other transport.
//!
//! The accept loop never ends because of one connection: a failed handshake or a peer that
//! breaks the protocol closes that connection (with one warning line naming the peer), and
//! an `accept` error such as running out of file descriptors is logged and retried after a
//! short back-off.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::connection::Connection;
use crate::error::CallError;
use crate::object::{Dispatch, RemoteRef};

/// A listener and its root object (PB's `PBServerFactory(root)`).
///
/// ```no_run
/// # use rpc_core::{remote, Server};
/// # #[remote] pub trait Echo { async fn remote_echo(&self, s: String) -> String; }
/// # struct E; impl Echo for E { async fn remote_echo(&self, s: String) -> String { s } }
/// # async fn f() -> Result<(), rpc_core::CallError> {
/// let server = Server::bind("127.0.0.1:0", EchoRef::new(E)).await?;
/// println!("listening on {}", server.local_addr());
/// server.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
/// # Ok(()) }
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    root: Arc<dyn Dispatch>,
    config: Config,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("root", &self.root.interface())
            .finish()
    }
}

impl Server {
    /// Binds `addr` (use port 0 for any free port) with `root` as the root object of every
    /// connection: a `<Trait>Ref` of a local object, made with `<Trait>Ref::new(object)`.
    pub async fn bind<A: ToSocketAddrs, R: RemoteRef>(
        addr: A,
        root: R,
    ) -> Result<Server, CallError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| CallError::io("could not bind the listening socket", e))?;
        Server::from_listener(listener, root)
    }

    /// Serves on an already bound listener.
    pub fn from_listener<R: RemoteRef>(
        listener: TcpListener,
        root: R,
    ) -> Result<Server, CallError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| CallError::io("could not read the listener's address", e))?;
        Ok(Server {
            listener,
            local_addr,
            root: local_root(&root)?,
            config: Config::default(),
        })
    }

    /// Uses `config` for every connection accepted from now on.
    pub fn with_config(mut self, config: Config) -> Server {
        self.config = config;
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until the process ends.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: stops accepting, answers
    /// new calls with `ShuttingDown`, lets the calls in flight finish for up to
    /// [`Config::shutdown_grace`], then closes every connection.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            local_addr,
            root,
            config,
        } = self;
        let drain = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    connections.spawn(serve_tcp(
                        stream,
                        peer,
                        Arc::clone(&root),
                        config.clone(),
                        drain.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept, ...: none of
                    // them is a reason to stop serving the others.
                    tracing::warn!(%local_addr, "accept failed: {e}; retrying in {backoff:?}");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        drop(listener);
        tracing::info!(%local_addr, "shutting down: {} connection(s) open", connections.len());
        drain.cancel();
        let grace = config.shutdown_grace + Duration::from_secs(1);
        if tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            connections.shutdown().await;
        }
    }
}

async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    root: Arc<dyn Dispatch>,
    config: Config,
    drain: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
    }
    let (reader, writer) = stream.into_split();
    serve_halves(reader, writer, peer.to_string(), root, config, drain).await;
}

async fn serve_halves<R, W>(
    reader: R,
    writer: W,
    peer: String,
    root: Arc<dyn Dispatch>,
    config: Config,
    drain: CancellationToken,
) where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let grace = config.shutdown_grace;
    let established = tokio::select! {
        established = Connection::establish(reader, writer, config, Some(root), peer.clone()) => established,
        _ = drain.cancelled() => return,
    };
    let connection = match established {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(%peer, "handshake failed: {e}");
            return;
        }
    };
    tracing::debug!(%peer, "connection established");
    tokio::select! {
        _ = connection.shared().closed() => {}
        _ = drain.cancelled() => connection.drain(grace).await,
    }
}

/// Serves `root` over one connection on any transport (an in-memory
/// [`tokio::io::duplex`], a Unix socket, ...) until it closes. `peer` names the other end in
/// logs. Returns an error if the handshake fails.
pub async fn serve_connection<T, R>(
    transport: T,
    root: R,
    config: Config,
    peer: &str,
) -> Result<(), CallError>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    R: RemoteRef,
{
    let (reader, writer) = tokio::io::split(transport);
    let connection = Connection::establish(
        reader,
        writer,
        config,
        Some(local_root(&root)?),
        peer.to_owned(),
    )
    .await?;
    connection.shared().closed().await;
    Ok(())
}

/// The dispatcher of a root object, which must live in this process.
fn local_root<R: RemoteRef>(root: &R) -> Result<Arc<dyn Dispatch>, CallError> {
    root.object()
        .local_dispatch()
        .cloned()
        .ok_or_else(|| CallError::Encode {
            what: "the root object",
            message: "a root object must be a local object (`FooRef::new(object)`), not a proxy \
                  of an object in another process"
                .into(),
        })
}
