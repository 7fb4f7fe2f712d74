//! tarpc 0.38: a service `ping(u64) -> u64`, bincode over TCP, the server spawning
//! each request's response future (the loop of tarpc's examples).

use std::future::Future;

use futures::StreamExt;
use tarpc::client::{self, RpcError};
use tarpc::context::{self, Context};
use tarpc::serde_transport::Transport;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

use super::{Caller, Shared, accept, check, connect, listen};
use crate::counting::WriteCounters;
use crate::harness::PAYLOAD;

/// The tarpc service: answers a ping with its value.
#[tarpc::service]
pub(crate) trait PingService {
    /// Returns `value` unchanged.
    async fn ping(value: u64) -> u64;
}

#[derive(Clone)]
struct Ponger;

impl PingService for Ponger {
    async fn ping(self, _: Context, value: u64) -> u64 {
        value
    }
}

impl Caller for PingServiceClient {
    type Answer = Result<u64, RpcError>;

    fn call(&self) -> impl Future<Output = Self::Answer> + Send + '_ {
        self.ping(context::current(), PAYLOAD)
    }

    fn check(answer: Self::Answer) {
        check(answer.expect("a tarpc call failed"));
    }
}

/// Serves tarpc's ping over one TCP connection and connects to it, both sockets wrapped to
/// count their writes.
pub(crate) async fn start() -> Shared<PingServiceClient> {
    let (listener, addr) = listen().await;
    let writes = WriteCounters::default();
    let server_writes = writes.server.clone();
    tokio::spawn(async move {
        let stream = accept(&listener, server_writes).await;
        let transport = Transport::from((stream, Bincode::default()));
        BaseChannel::with_defaults(transport)
            .execute(Ponger.serve())
            .for_each(|response| async {
                tokio::spawn(response);
            })
            .await;
    });
    let stream = connect(addr, writes.client.clone()).await;
    let transport = Transport::from((stream, Bincode::default()));
    Shared {
        client: PingServiceClient::new(client::Config::default(), transport).spawn(),
        writes: Some(writes),
    }
}
