//! pbrs: a typed proxy to an `Echo` root object, over plain TCP (sockets counted) or TLS.

use std::future::Future;

use rpc_core::tls::{ClientTls, Identity, ServerTls};
use rpc_core::{Client, Config, Server, remote, serve_connection};

use super::{Caller, Shared, accept, check, connect, listen};
use crate::counting::WriteCounters;
use crate::harness::PAYLOAD;

/// The remote object of the pbrs subject: echoes its argument.
#[remote]
pub(crate) trait Echo {
    /// Returns `payload` unchanged.
    async fn remote_echo(&self, payload: Vec<u8>) -> Vec<u8>;
}

struct Echoer;

impl Echo for Echoer {
    async fn remote_echo(&self, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

impl Caller for EchoRef {
    fn call_echo(&self) -> impl Future<Output = ()> + Send + '_ {
        let call = self.echo(PAYLOAD.to_vec());
        async move { check(&call.await.unwrap()) }
    }
}

/// Serves an echo root over one plain TCP connection and connects to it, both sockets
/// wrapped to count their writes.
pub(crate) async fn start() -> Shared<EchoRef> {
    let (listener, addr) = listen().await;
    let writes = WriteCounters::default();
    let server_writes = writes.server.clone();
    tokio::spawn(async move {
        let stream = accept(&listener, server_writes).await;
        let root = EchoRef::new(Echoer);
        let _ = serve_connection(stream, root, Config::default(), "bench").await;
    });
    let stream = connect(addr, writes.client.clone()).await;
    let client = Client::over(stream, Config::default()).await.unwrap();
    Shared {
        client: client.root().await.unwrap(),
        writes: Some(writes),
    }
}

/// Starts a pbrs server over TLS (an identity generated here, pinned by the client) and
/// connects to it; its writes are not counted. The handshake is over before measuring.
pub(crate) async fn start_tls() -> Shared<EchoRef> {
    let identity = Identity::generate(&["localhost"]).unwrap();
    let pin = ClientTls::pinned(identity.fingerprint());
    let server = Server::bind("127.0.0.1:0", EchoRef::new(Echoer))
        .await
        .unwrap()
        .with_tls(ServerTls::new(identity))
        .unwrap();
    let addr = server.local_addr().to_string();
    tokio::spawn(server.run());
    let client = Client::connect_tls(&addr, &pin).await.unwrap();
    Shared {
        client: client.root().await.unwrap(),
        writes: None,
    }
}
