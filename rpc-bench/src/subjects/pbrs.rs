//! pbrs: a typed proxy to a `Ping` root object, over plain TCP (sockets counted, or not) or
//! TLS.

use std::future::Future;

use rpc_core::tls::{ClientTls, Identity, ServerTls};
use rpc_core::{CallError, Client, Config, Server, remote, serve_connection_halves};

use super::{Caller, Shared, accept, check, connect, listen};
use crate::counting::WriteCounters;
use crate::harness::PAYLOAD;

/// The remote object of the pbrs subject: answers a ping with its value.
#[remote]
pub(crate) trait Ping {
    /// Returns `value` unchanged.
    async fn remote_ping(&self, value: u64) -> u64;
}

struct Ponger;

impl Ping for Ponger {
    async fn remote_ping(&self, value: u64) -> u64 {
        value
    }
}

impl Caller for PingRef {
    type Answer = Result<u64, CallError>;

    fn call(&self) -> impl Future<Output = Self::Answer> + Send + '_ {
        self.ping(PAYLOAD)
    }

    fn check(answer: Self::Answer) {
        check(answer.expect("a pbrs call failed"));
    }
}

/// Serves a ping root over one plain TCP connection and connects to it, both sockets
/// wrapped to count their writes. Each socket is split without a lock (as `Client::connect`
/// and `Server::bind` split theirs) and handed over in halves, its write half counted.
pub(crate) async fn start() -> Shared<PingRef> {
    let (listener, addr) = listen().await;
    let writes = WriteCounters::default();
    let server_writes = writes.server.clone();
    tokio::spawn(async move {
        let (reader, writer) = accept(&listener, server_writes).await.into_split();
        let root = PingRef::new(Ponger);
        let _ = serve_connection_halves(reader, writer, root, Config::default(), "bench").await;
    });
    let (reader, writer) = connect(addr, writes.client.clone()).await.into_split();
    let client = Client::over_halves(reader, writer, Config::default())
        .await
        .unwrap();
    Shared {
        client: client.root().await.unwrap(),
        writes: Some(writes),
    }
}

/// Starts a pbrs server the way applications do, `Server::bind`, and connects to it with
/// `Client::connect` (plain TCP, the socket split without a lock) or, when `tls`, with
/// `Client::connect_tls` (an identity generated here, pinned by the client; the handshake is
/// over before measuring). The writes are not counted: this shows what the counting wrapper
/// costs the counted subject.
pub(crate) async fn start_direct(tls: bool) -> Shared<PingRef> {
    let mut server = Server::bind("127.0.0.1:0", PingRef::new(Ponger))
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let mut pin = None;
    if tls {
        let identity = Identity::generate(&["localhost"]).unwrap();
        pin = Some(ClientTls::pinned(identity.fingerprint()));
        server = server.with_tls(ServerTls::new(identity)).unwrap();
    }
    tokio::spawn(server.run());
    let client = match &pin {
        Some(pin) => Client::connect_tls(&addr, pin).await,
        None => Client::connect(&addr).await,
    };
    Shared {
        client: client.unwrap().root().await.unwrap(),
        writes: None,
    }
}
