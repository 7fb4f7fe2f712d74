//! Flow control: heavy traffic both ways never deadlocks, a peer that stops reading is cut
//! off after `frame_timeout`, and a frame that stops after its length header is timed too.

mod common;

use common::on_both_runtimes;

use std::time::Duration;

use common::{RawPeer, call_payload, frame, within};
use rpc_core::protocol::ROOT_OBJECT;
use rpc_core::{Client, Config, Peer, Server, remote};
use tokio::sync::mpsc;

/// Moves bytes around.
#[remote]
pub trait Bulk {
    /// Returns `data` unchanged.
    async fn remote_echo(&self, data: Vec<u8>) -> Vec<u8>;
    /// `len` bytes: a string, which encodes in one copy (a `Vec<u8>` encodes byte by byte,
    /// which takes seconds for the test's 64 MiB in a debug build).
    async fn remote_blob(&self, len: u32) -> String;
    /// Reports the calling connection to the test.
    async fn remote_hello(&self);
}

struct Mover {
    peers: mpsc::UnboundedSender<Peer>,
}

impl Bulk for Mover {
    async fn remote_echo(&self, data: Vec<u8>) -> Vec<u8> {
        // Answered from a task of its own, like any handler that waits for something.
        tokio::task::yield_now().await;
        data
    }

    async fn remote_blob(&self, len: u32) -> String {
        tokio::task::yield_now().await;
        "7".repeat(len as usize)
    }

    async fn remote_hello(&self) {
        if let Some(peer) = Peer::current() {
            let _ = self.peers.send(peer);
        }
    }
}

async fn server(
    config: Config,
) -> (
    std::net::SocketAddr,
    mpsc::UnboundedReceiver<Peer>,
    tokio::task::JoinHandle<()>,
) {
    let (peers, seen) = mpsc::unbounded_channel();
    let server = Server::bind("127.0.0.1:0", BulkRef::new(Mover { peers }))
        .await
        .unwrap()
        .with_config(config);
    let addr = server.local_addr();
    (addr, seen, tokio::spawn(server.run()))
}

on_both_runtimes! {
    /// Both sides have far more than one frame limit queued for each other at once (calls one
    /// way, answers the other): neither may stop reading, or they would wait for each other for
    /// ever. Calls refused while the server's queue is over the limit are retried.
    async fn heavy_traffic_both_ways_does_not_deadlock() {
        let config = Config::default().max_frame_length(64 * 1024).no_keepalive();
        let (addr, _peers, serving) = server(config.clone()).await;
        let client = within("connect", Client::connect_with(addr, config))
            .await
            .unwrap();
        let bulk: BulkRef = client.root().await.unwrap();
        let tasks: Vec<_> = (0..16u8)
            .map(|t| {
                let bulk = bulk.clone();
                tokio::spawn(async move {
                    for round in 0..10u8 {
                        let data = vec![t ^ round; 48 * 1024];
                        loop {
                            match bulk.echo(data.clone()).await {
                                Ok(back) => {
                                    assert_eq!(back, data);
                                    break;
                                }
                                Err(e)
                                    if e.remote_kind()
                                        == Some(rpc_core::RemoteErrorKind::Overloaded) =>
                                {
                                    tokio::task::yield_now().await
                                }
                                Err(e) => panic!("call failed: {e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        within("every echo", futures::future::try_join_all(tasks))
            .await
            .unwrap();
        serving.abort();
    }
}

on_both_runtimes! {
    /// A peer that sends calls and never reads their answers is disconnected once it has read
    /// nothing for `frame_timeout`; its answers do not pile up in memory meanwhile.
    async fn a_peer_that_stops_reading_is_cut_off() {
        let config = Config::default()
            .frame_timeout(Duration::from_millis(300))
            .no_keepalive();
        let (addr, mut peers, serving) = server(config).await;
        let mut raw = RawPeer::handshaken(addr).await;
        let _ = raw.call(1, ROOT_OBJECT, "hello", ()).await;
        let peer = within("the hello", peers.recv()).await.unwrap();
        // Far more than loopback buffers: 64 answers of 1 MiB, never read.
        for id in 2..66u64 {
            raw.send(&frame(&call_payload(
                id,
                ROOT_OBJECT,
                "blob",
                (1u32 << 20,),
            )))
            .await;
        }
        within("the server to give up on the peer", peer.disconnected()).await;
        let reason = peer.disconnect_reason().unwrap();
        assert!(reason.contains("read nothing"), "{reason}");

        // Others are still served.
        let client = within("connect", Client::connect(addr)).await.unwrap();
        let bulk: BulkRef = client.root().await.unwrap();
        assert_eq!(bulk.blob(3).await.unwrap(), "777");
        serving.abort();
    }
}

/// A frame that stops right after its 4-byte length header (the codec has consumed the
/// header and reserved the announced length) is timed out like any other partial frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_stops_after_its_header_times_out() {
    let config = Config::default()
        .frame_timeout(Duration::from_millis(300))
        .no_keepalive();
    let (addr, _peers, serving) = server(config).await;
    let mut raw = RawPeer::handshaken(addr).await;
    raw.send(&(1u32 << 20).to_be_bytes()).await;
    raw.expect_closed().await;
    serving.abort();
}
