//! [`Server`]: a TCP listener whose connections all see one root object, and
//! [`serve_connection`](crate::serve_connection::serve_connection) to serve a root over any other
//! transport.
//!
//! The accept loop never ends because of one connection: a failed handshake or a peer that
//! breaks the protocol closes that connection (with one warning line naming the peer), and
//! an `accept` error such as running out of file descriptors is logged and retried after a
//! short back-off. Beyond [`Config::max_connections`] a new connection is closed at once.
//! All the connections of a server share one memory budget ([`Config::memory_budget`]);
//! [`ServerStats`] reads it, and the connection count, while the server runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::codec;
use crate::config::Config;
use crate::conn::{PeerInfo, drain as drain_connection, establish};
use crate::dispatch::Dispatch;
use crate::error::CallError;
use crate::io::budget::MemoryBudget;
use crate::object::RemoteRef;
use crate::protocol::{self, LOOKUP_OBJECT, ROOT_OBJECT};
use crate::serve_connection::local_root;
use crate::sturdy::{LookupRef, Registry, SturdyUrl};
use crate::tls::{Fingerprint, PeerCertificate, ServerTls, TLS_HANDSHAKE_RECORD, TlsAcceptor};

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
    root: Option<Arc<dyn Dispatch>>,
    config: Config,
    stats: ServerStats,
    tls: Option<(TlsAcceptor, Fingerprint)>,
    registry: Registry,
}

/// Live figures of a running [`Server`]: what its connections hold, and how many there are.
/// Cheap to clone; take it with [`Server::stats`] before `run`.
#[derive(Debug, Clone)]
pub struct ServerStats {
    memory: Arc<MemoryBudget>,
    connections: Arc<AtomicUsize>,
    refused: Arc<AtomicU64>,
}

impl ServerStats {
    fn new(config: &Config) -> Self {
        ServerStats {
            memory: MemoryBudget::new(config.memory_budget),
            connections: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes held now by all connections in frames still arriving and frames queued for
    /// their peers.
    pub fn bytes_held(&self) -> usize {
        self.memory.in_use()
    }

    /// The most bytes ever held at once (see [`bytes_held`](ServerStats::bytes_held)).
    pub fn peak_bytes_held(&self) -> usize {
        self.memory.peak()
    }

    /// The memory budget ([`Config::memory_budget`]).
    pub fn memory_budget(&self) -> usize {
        self.memory.limit()
    }

    /// Connections being served now (handshaking included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections closed at once because [`Config::max_connections`] were being served.
    pub fn refused_connections(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Counts one connection while alive.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("root", &self.root.as_ref().map(|r| r.interface()))
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
        Server::new(listener, Some(local_root(&root)?))
    }

    /// Serves on `listener` with no root object: peers reach only the objects registered
    /// under sturdy URLs ([`register`](Server::register); so call
    /// [`with_tls`](Server::with_tls) too). A call of object 0 is answered `NoSuchObject`.
    pub fn without_root(listener: TcpListener) -> Result<Server, CallError> {
        Server::new(listener, None)
    }

    fn new(listener: TcpListener, root: Option<Arc<dyn Dispatch>>) -> Result<Server, CallError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| CallError::io("could not read the listener's address", e))?;
        let config = Config::default();
        Ok(Server {
            listener,
            local_addr,
            root,
            stats: ServerStats::new(&config),
            config,
            tls: None,
            registry: Registry::default(),
        })
    }

    /// Serves every connection over TLS with `tls` (its identity, and whether clients must
    /// present certificates). A plaintext client is refused with a message saying that this
    /// server requires TLS.
    ///
    /// # Errors
    /// When the identity cannot be used by rustls.
    pub fn with_tls(mut self, tls: ServerTls) -> Result<Server, CallError> {
        let acceptor = tls.acceptor()?;
        self.tls = Some((acceptor, tls.identity().fingerprint()));
        Ok(self)
    }

    /// The fingerprint of the server's TLS certificate, when it serves TLS.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.tls.as_ref().map(|(_, fingerprint)| *fingerprint)
    }

    /// Registers `object` under a new unguessable secret and returns its sturdy URL,
    /// `pbrs://<fingerprint>@<local address>/<secret>` (for a server bound to `0.0.0.0`, give
    /// clients [`SturdyUrl::with_addr`] with the address they reach it at). Whoever knows the
    /// URL can call the object; nobody else can reach it. The root object stays as it is.
    ///
    /// # Errors
    /// When the server does not serve TLS ([`with_tls`](Server::with_tls) first): the URL
    /// names the server by its certificate.
    pub fn register<R: RemoteRef>(&self, object: R) -> Result<SturdyUrl, CallError> {
        self.register_with_secret(object, &SturdyUrl::new_secret()?)
    }

    /// Like [`register`](Server::register), under a secret of the caller's: one made by
    /// [`SturdyUrl::new_secret`] and kept, so that the URL stays the same across restarts.
    ///
    /// # Errors
    /// As `register`; when `secret` is not at least 32 hexadecimal digits; when another
    /// object is registered under it already.
    pub fn register_with_secret<R: RemoteRef>(
        &self,
        object: R,
        secret: &str,
    ) -> Result<SturdyUrl, CallError> {
        let Some(fingerprint) = self.fingerprint() else {
            return Err(CallError::Tls {
                message: "a pbrs:// URL names a server by its TLS certificate: call \
                          Server::with_tls before Server::register"
                    .into(),
            });
        };
        SturdyUrl::check_secret(secret).map_err(|problem| CallError::InvalidUrl {
            url: "(the secret given to register_with_secret)".into(),
            problem,
        })?;
        let secret = secret.to_ascii_lowercase();
        self.registry.register(object.object().clone(), &secret)?;
        Ok(SturdyUrl::new(
            fingerprint,
            self.local_addr.to_string(),
            secret,
        ))
    }

    /// Uses `config` for every connection accepted from now on (and a new memory budget of
    /// its size: take [`stats`](Server::stats) after this).
    pub fn with_config(mut self, config: Config) -> Server {
        self.stats = ServerStats::new(&config);
        self.config = config;
        self
    }

    /// Live figures of this server, to read while it runs.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
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
            stats,
            tls,
            registry,
        } = self;
        let mut permanent: Vec<_> = root.map(|root| (ROOT_OBJECT, root)).into_iter().collect();
        if !registry.is_empty() {
            let lookup = LookupRef::new(registry);
            let lookup = Arc::clone(lookup.object().local_dispatch().expect("a local object"));
            permanent.push((LOOKUP_OBJECT, lookup));
        }
        let tls = tls.map(|(acceptor, _)| acceptor);
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
                    if stats.connections.load(Ordering::SeqCst) >= config.max_connections {
                        let refused = stats.refused.fetch_add(1, Ordering::SeqCst) + 1;
                        // One line for the first refusal and one per thousand after it: a
                        // flood of connections must not become a flood of log lines.
                        if refused % 1000 == 1 {
                            tracing::warn!(
                                %peer,
                                "refused a connection: {} connections are being served (the \
                                 max_connections limit); {refused} refused so far",
                                config.max_connections
                            );
                        }
                        drop(stream);
                        continue;
                    }
                    stats.connections.fetch_add(1, Ordering::SeqCst);
                    let counted = Counted(Arc::clone(&stats.connections));
                    let served = serve_tcp(
                        stream,
                        peer,
                        tls.clone(),
                        permanent.clone(),
                        config.clone(),
                        drain.clone(),
                        Arc::clone(&stats.memory),
                    );
                    connections.spawn(async move {
                        let _counted = counted;
                        served.await
                    });
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
        // Those that ended since the last accept are not open.
        while connections.try_join_next().is_some() {}
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
    tls: Option<TlsAcceptor>,
    permanent: Vec<(u64, Arc<dyn Dispatch>)>,
    config: Config,
    drain: CancellationToken,
    memory: Arc<MemoryBudget>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
    }
    let mut info = PeerInfo::tcp(peer, stream.local_addr().ok());
    let Some(tls) = tls else {
        let (reader, writer) = stream.into_split();
        serve_halves(reader, writer, info, permanent, config, drain, memory).await;
        return;
    };
    let secured = tokio::select! {
        secured = tokio::time::timeout(config.handshake_timeout, secure(stream, &tls)) => secured,
        _ = drain.cancelled() => return,
    };
    let (stream, certificate) = match secured {
        Ok(Ok(secured)) => secured,
        Ok(Err(why)) => {
            tracing::warn!(%peer, "TLS handshake failed: {why}");
            return;
        }
        Err(_) => {
            tracing::warn!(
                %peer,
                "TLS handshake timed out after {:?}",
                config.handshake_timeout
            );
            return;
        }
    };
    info.encrypted = true;
    info.certificate = certificate;
    let (reader, writer) = tokio::io::split(stream);
    serve_halves(reader, writer, info, permanent, config, drain, memory).await;
}

/// The server side of TLS on a new connection. A client whose first byte does not open a TLS
/// handshake is a plaintext pbrs client: it gets a refusal it can read, and the connection
/// closes.
async fn secure(
    stream: TcpStream,
    tls: &TlsAcceptor,
) -> Result<
    (
        tokio_rustls::server::TlsStream<TcpStream>,
        Option<PeerCertificate>,
    ),
    String,
> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err("the client closed the connection before the TLS handshake".into()),
        Ok(_) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(_) => {
            let refusal = protocol::refusal(
                "this server requires TLS; connect with a pbrs:// URL (Client::connect_url) or \
                 Client::connect_tls",
            );
            let mut stream = stream;
            if let Ok(frame) = codec::one_frame(&refusal, refusal.len()) {
                let _ = stream.write_all(&frame).await;
            }
            // Take the client's hello (already arrived: it was peeked) before closing, so the
            // close is not a reset that could discard the refusal before the client reads it.
            let _ = stream.read(&mut [0u8; 64]).await;
            let _ = stream.shutdown().await;
            return Err(
                "the client did not speak TLS (a plaintext pbrs client?); it was told \
                        that this server requires TLS"
                    .into(),
            );
        }
        Err(e) => return Err(format!("reading from the client failed: {e}")),
    }
    tls.accept(stream).await
}

async fn serve_halves<R, W>(
    reader: R,
    writer: W,
    info: PeerInfo,
    permanent: Vec<(u64, Arc<dyn Dispatch>)>,
    config: Config,
    drain: CancellationToken,
    memory: Arc<MemoryBudget>,
) where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let grace = config.shutdown_grace;
    let peer = info.addr.clone();
    let established = tokio::select! {
        established = establish(reader, writer, config, permanent, info, memory) => established,
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
        _ = drain.cancelled() => drain_connection(&connection, grace, "the server shut down").await,
    }
}
