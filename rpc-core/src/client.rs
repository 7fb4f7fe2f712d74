//! [`Client`]: one connection to a server, and the way to its root object.

use std::future::Future;
use std::net::SocketAddr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::call::CallFuture;
use crate::config::Config;
use crate::conn::{Connection, RemoteObject, establish};
use crate::error::CallError;
use crate::io::budget::MemoryBudget;
use crate::object::{ObjectRef, RemoteRef};
use crate::peer::{DisconnectHook, Peer};

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
        let stream =
            match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return Err(CallError::io(
                        "could not connect (is the server running, and is the address right?)",
                        e,
                    ));
                }
                Err(_) => {
                    return Err(CallError::Timeout {
                        what: "connecting",
                        after: config.connect_timeout,
                    });
                }
            };
        let _ = stream.set_nodelay(true);
        let peer = stream
            .peer_addr()
            .map(|a: SocketAddr| a.to_string())
            .unwrap_or_else(|_| "unknown peer".into());
        let (reader, writer) = stream.into_split();
        let memory = MemoryBudget::new(config.memory_budget);
        let connection = establish(reader, writer, config, None, peer, memory).await?;
        Ok(Client { connection })
    }

    /// Connects over any transport: an in-memory [`tokio::io::duplex`], a Unix socket, ...
    pub async fn over<T>(transport: T, config: Config) -> Result<Client, CallError>
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(transport);
        let memory = MemoryBudget::new(config.memory_budget);
        let peer = "in-process peer".to_owned();
        let connection = establish(reader, writer, config, None, peer, memory).await?;
        Ok(Client { connection })
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
