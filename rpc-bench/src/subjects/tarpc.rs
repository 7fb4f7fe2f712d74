//! tarpc 0.38: a service `echo(Vec<u8>) -> Vec<u8>`, bincode over TCP, the server spawning
//! each request's response future (the loop of tarpc's examples).

use futures::StreamExt;
use tarpc::client;
use tarpc::context::{self, Context};
use tarpc::serde_transport::Transport;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

use super::{Caller, Shared, accept, check, connect, listen};
use crate::counting::WriteCounters;
use crate::harness::PAYLOAD;

/// The tarpc service: echoes its argument.
#[tarpc::service]
pub(crate) trait EchoService {
    /// Returns `payload` unchanged.
    async fn echo(payload: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct Echoer;

impl EchoService for Echoer {
    async fn echo(self, _: Context, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

impl Caller for EchoServiceClient {
    async fn call_checked(&self) {
        let echo = self.echo(context::current(), PAYLOAD.to_vec()).await;
        check(&echo.unwrap());
    }
}

/// Serves tarpc's echo over one TCP connection and connects to it, both sockets wrapped to
/// count their writes.
pub(crate) async fn start() -> Shared<EchoServiceClient> {
    let (listener, addr) = listen().await;
    let writes = WriteCounters::default();
    let server_writes = writes.server.clone();
    tokio::spawn(async move {
        let stream = accept(&listener, server_writes).await;
        let transport = Transport::from((stream, Bincode::default()));
        BaseChannel::with_defaults(transport)
            .execute(Echoer.serve())
            .for_each(|response| async {
                tokio::spawn(response);
            })
            .await;
    });
    let stream = connect(addr, writes.client.clone()).await;
    let transport = Transport::from((stream, Bincode::default()));
    Shared {
        client: EchoServiceClient::new(client::Config::default(), transport).spawn(),
        writes: Some(writes),
    }
}
