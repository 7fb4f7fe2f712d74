//! [`Client`]: one connection to a server, and the way to its root object.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::call::CallFuture;
use crate::config::Config;
use crate::conn::{Connection, PeerInfo, RemoteObject, establish};
use crate::error::{CallError, RemoteErrorKind, TimeoutKind};
use crate::io::budget::MemoryBudget;
use crate::object::{ObjectRef, RemoteRef, typed};
use crate::peer::{DisconnectHook, Peer};
use crate::protocol::LOOKUP_OBJECT;
use crate::sturdy::SturdyUrl;
use crate::tls::{self, ClientTls};

/// A connection to a pbrs server (PB's `PBClientFactory`). Cheap to clone; the connection
/// closes when the last clone of the client and of every proxy obtained through it is gone,
/// or on [`Client::close`].
#[derive(Clone)]
pub struct Client {
    connection: Connection,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.connection.shared().peer())
            .finish()
    }
}

impl Client {
    /// Connects over TCP with the default [`Config`].
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> Result<Client, CallError> {
        Client::connect_with(addr, Config::default()).await
    }

    /// Connects over TCP with `config` (frame limit, timeouts, ...).
    pub async fn connect_with<A: ToSocketAddrs>(
        addr: A,
        config: Config,
    ) -> Result<Client, CallError> {
        let stream = tcp_connect(addr, &config).await?;
        let info = tcp_peer(&stream);
        let (reader, writer) = stream.into_split();
        Client::start(reader, writer, config, info).await
    }

    /// Connects over TLS to `addr` (`host:port`), checking the server as `tls` says (a pinned
    /// fingerprint or CA roots), with the default [`Config`]. A server that does not pass the
    /// check, or does not speak TLS, fails here with [`CallError::Tls`] saying which.
    pub async fn connect_tls(addr: &str, tls: &ClientTls) -> Result<Client, CallError> {
        Client::connect_tls_with(addr, tls, Config::default()).await
    }

    /// Connects over TLS with `config`; see [`connect_tls`](Client::connect_tls).
    pub async fn connect_tls_with(
        addr: &str,
        tls: &ClientTls,
        config: Config,
    ) -> Result<Client, CallError> {
        let stream = tcp_connect(addr, &config).await?;
        let mut info = tcp_peer(&stream);
        let secured = tokio::time::timeout(
            config.handshake_timeout,
            tls.connect(tls::host_of(addr), stream),
        );
        let stream = match secured.await {
            Ok(stream) => stream?,
            Err(_) => {
                return Err(CallError::timeout(
                    TimeoutKind::TlsHandshake,
                    config.handshake_timeout,
                ));
            }
        };
        info.encrypted = true;
        let (reader, writer) = tokio::io::split(stream);
        Client::start(reader, writer, config, info).await
    }

    /// Connects to the object a sturdy URL names,
    /// `pbrs://<fingerprint>@<host>:<port>/<secret>`: over TLS, accepting only the server with
    /// that fingerprint, then looking the secret up. Returns the object as a typed proxy (it
    /// holds the connection open; [`RemoteRef::peer`] reaches the connection).
    ///
    /// # Errors
    /// [`CallError::InvalidUrl`] when the URL does not parse, [`CallError::Tls`] when the
    /// server is not the pinned one, [`CallError::Remote`] with
    /// [`RemoteErrorKind::NoSuchObject`](crate::RemoteErrorKind::NoSuchObject) when it has
    /// no object under that secret, and the errors of [`connect`](Client::connect).
    pub async fn connect_url<R: RemoteRef>(url: &str) -> Result<R, CallError> {
        let url: SturdyUrl = url.parse()?;
        Client::connect_url_with(
            &url,
            &ClientTls::pinned(url.fingerprint()),
            Config::default(),
        )
        .await
    }

    /// Like [`connect_url`](Client::connect_url) with `config`, and with `tls` for what else
    /// the connection needs (e.g. a client certificate: `ClientTls::pinned(url.fingerprint())
    /// .with_identity(...)`). The URL's pin is checked whatever `tls` trusts.
    pub async fn connect_url_with<R: RemoteRef>(
        url: &SturdyUrl,
        tls: &ClientTls,
        config: Config,
    ) -> Result<R, CallError> {
        let tls = tls.clone().pin(url.fingerprint());
        let client = Client::connect_tls_with(url.addr(), &tls, config).await?;
        let lookup = ObjectRef::remote(RemoteObject::permanent(
            client.connection.clone(),
            LOOKUP_OBJECT,
            None,
        ));
        let no_object = || CallError::Remote {
            kind: RemoteErrorKind::NoSuchObject,
            message: "the server registered no object under this URL's secret (the URL is \
                      wrong or was revoked)"
                .into(),
        };
        // A server with no registrations has no lookup object at all: the same answer.
        let found: Option<ObjectRef> = match lookup.call_remote("lookup", (url.secret(),)).await {
            Err(e) if e.remote_kind() == Some(RemoteErrorKind::NoSuchObject) => None,
            answer => answer?,
        };
        let object = found.ok_or_else(no_object)?;
        typed(object, "the object the URL names")
    }

    pub(crate) fn from_connection(connection: Connection) -> Client {
        Client { connection }
    }

    async fn start<R, W>(
        reader: R,
        writer: W,
        config: Config,
        info: PeerInfo,
    ) -> Result<Client, CallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let memory = MemoryBudget::new(config.memory_budget);
        let connection = establish(reader, writer, config, Vec::new(), info, memory).await?;
        Ok(Client { connection })
    }

    /// Connects over any transport: an in-memory [`tokio::io::duplex`], a Unix socket, ...
    /// Reading and writing go through one lock on the transport (it is split with
    /// [`tokio::io::split`]); a transport that splits without one is better passed to
    /// [`over_halves`](Client::over_halves).
    pub async fn over<T>(transport: T, config: Config) -> Result<Client, CallError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(transport);
        Client::over_halves(reader, writer, config).await
    }

    /// Connects over a transport already split into the half it reads from and the half it
    /// writes to: `UnixStream::into_split`, `TcpStream::into_split` (with a wrapper of your
    /// own around one half, say), a pair of pipes. The connection's reader and writer then
    /// share no lock.
    pub async fn over_halves<R, W>(
        reader: R,
        writer: W,
        config: Config,
    ) -> Result<Client, CallError>
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Client::start(reader, writer, config, PeerInfo::local("in-process peer")).await
    }

    /// The server's root object as a typed proxy (PB's `getRootObject`).
    pub async fn root<R: RemoteRef>(&self) -> Result<R, CallError> {
        if let Some(reason) = self.connection.shared().closed_reason() {
            return Err(CallError::Disconnected { reason });
        }
        Ok(R::from_object(self.root_object()))
    }

    /// The server's root object as an untyped reference.
    pub fn root_object(&self) -> ObjectRef {
        ObjectRef::remote(RemoteObject::root(self.connection.clone(), None))
    }

    /// Calls `method` on the root object with the argument tuple `args`, untyped
    /// (PB's `callRemote("name", ...)`): `client.call_remote::<_, (i64, u32)>("calculate", (1, 2))`.
    pub fn call_remote<A, R>(&self, method: &str, args: A) -> CallFuture<R>
    where
        A: Serialize,
        R: DeserializeOwned + Send + 'static,
    {
        self.root_object().call_remote(method, args)
    }

    /// The connection's other end: its address, disconnect notifications, object counts.
    pub fn peer(&self) -> Peer {
        Peer::new(std::sync::Arc::clone(self.connection.shared()))
    }

    /// `true` until the connection is lost or closed.
    pub fn is_connected(&self) -> bool {
        self.connection.shared().closed_reason().is_none()
    }

    /// Resolves when the connection is lost or closed.
    pub fn disconnected(&self) -> impl Future<Output = ()> + Send + 'static {
        self.connection.shared().closed()
    }

    /// Calls `callback` once when the connection is lost or closed; see
    /// [`Peer::on_disconnect`].
    pub fn on_disconnect(&self, callback: impl FnOnce(&str) + Send + 'static) -> DisconnectHook {
        self.peer().on_disconnect(callback)
    }

    /// Closes the connection: pending calls fail with [`CallError::Disconnected`].
    pub fn close(&self) {
        self.connection
            .shared()
            .close_locally("the client closed the connection");
    }
}

/// Opens a TCP connection within the connect timeout, with `TCP_NODELAY`.
async fn tcp_connect<A: ToSocketAddrs>(addr: A, config: &Config) -> Result<TcpStream, CallError> {
    let stream = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            return Err(CallError::io(
                "could not connect (is the server running, and is the address right?)",
                e,
            ));
        }
        Err(_) => {
            return Err(CallError::timeout(
                TimeoutKind::Connect,
                config.connect_timeout,
            ));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// What a TCP stream says of its peer.
fn tcp_peer(stream: &TcpStream) -> PeerInfo {
    match stream.peer_addr() {
        Ok(remote) => PeerInfo::tcp(remote, stream.local_addr().ok()),
        Err(_) => PeerInfo {
            addr: "unknown peer".into(),
            encrypted: false,
            local: false,
            certificate: None,
        },
    }
}
