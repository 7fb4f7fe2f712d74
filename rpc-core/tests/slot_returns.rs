#![allow(missing_docs)]
//! Frames around the size a built frame keeps in place (38 bytes; `codec::built_frame`), with
//! and without references; and the slots of calls that end in the first poll of a
//! `current_thread` reader, freed in the admission table only with the next admission or at
//! the burst's end (`conn::slot::SlotReturns`): against cancels, reused ids, refusals, metrics,
//! a reader that ends mid-burst, and a graceful shutdown.

mod common;

use common::on_both_runtimes;

use std::collections::HashMap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    Item, RawPeer, TestServer, ThingRef, call_payload, decode_message, decode_value, encode, frame,
    within,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use rpc_core::protocol::Message;
use rpc_core::{Client, Config, Peer, RemoteErrorKind, Server, remote, telemetry};
use tokio::sync::mpsc;

#[remote]
pub trait Shop {
    /// A new thing, exported, with `pad` bytes beside it (to size the answer frame).
    async fn remote_make(&self, pad: u32) -> (ThingRef, Vec<u8>);
    /// `pad` bytes (no reference).
    async fn remote_blob(&self, pad: u32) -> Vec<u8>;
    /// Calls in flight on the caller's connection, seen from inside.
    async fn remote_in_flight(&self) -> usize;
    /// Objects exported on the caller's connection.
    async fn remote_exported(&self) -> usize;
    /// Never answers.
    async fn remote_forever(&self);
}

struct ShopObject {
    next: AtomicU64,
    dropped: mpsc::UnboundedSender<u64>,
}

impl Shop for ShopObject {
    async fn remote_make(&self, pad: u32) -> (ThingRef, Vec<u8>) {
        let thing = ThingRef::new(Item {
            serial: self.next.fetch_add(1, Ordering::Relaxed),
            dropped: self.dropped.clone(),
        });
        (thing, vec![7; pad as usize])
    }
    async fn remote_blob(&self, pad: u32) -> Vec<u8> {
        vec![9; pad as usize]
    }
    async fn remote_in_flight(&self) -> usize {
        Peer::current().map_or(usize::MAX, |p| p.calls_in_flight())
    }
    async fn remote_exported(&self) -> usize {
        Peer::current().map_or(0, |p| p.exported_objects())
    }
    async fn remote_forever(&self) {
        std::future::pending::<()>().await
    }
}

async fn shop_server(config: Config) -> (TestServer, mpsc::UnboundedReceiver<u64>) {
    let (dropped, drops) = mpsc::unbounded_channel();
    let root = ShopRef::new(ShopObject {
        next: AtomicU64::new(1),
        dropped,
    });
    let server = Server::bind("127.0.0.1:0", root)
        .await
        .unwrap()
        .with_config(config);
    (TestServer::serve(server), drops)
}

on_both_runtimes! {
    /// Answers and calls of every size around the inline capacity, with and without a
    /// reference, arrive whole, and the exports they carry are committed and released.
    async fn frames_around_the_inline_capacity() {
        let (server, _drops) = shop_server(Config::default()).await;
        let client = Client::connect(server.addr).await.unwrap();
        let shop: ShopRef = client.root().await.unwrap();
        for pad in 0..80u32 {
            let blob = within("blob", shop.blob(pad)).await.unwrap();
            assert_eq!(blob, vec![9; pad as usize]);
            let (thing, bytes) = within("make", shop.make(pad)).await.unwrap();
            assert_eq!(bytes, vec![7; pad as usize]);
            let serial = within("serial", thing.serial()).await.unwrap();
            assert_eq!(serial, u64::from(pad) + 1);
            drop(thing);
        }
        within("exports released", async {
            while shop.exported().await.unwrap() != 1 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        // Raw: answer frames of every length 0..80 in one burst, in order.
        let mut raw = RawPeer::handshaken(server.addr).await;
        let mut burst = Vec::new();
        for id in 1..=80u64 {
            burst.extend(frame(&call_payload(id, 0, "blob", (id as u32,))));
            // A refused call (error frame via send_control) of growing length in between.
            let name = "x".repeat(id as usize % 50);
            burst.extend(frame(&call_payload(1000 + id, 0, &name, ())));
        }
        raw.send(&burst).await;
        let mut answers = HashMap::new();
        let mut errors = 0;
        for _ in 0..160 {
            let (m, v) = raw.read_message().await;
            match m {
                Message::Answer { id, .. } => {
                    assert_eq!(decode_value::<Vec<u8>>(&v), vec![9; id as usize]);
                    assert!(answers.insert(id, ()).is_none());
                }
                Message::Error { id, .. } => {
                    assert!(id > 1000);
                    errors += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((answers.len(), errors), (80, 80));
        drop(raw);
        drop((shop, client));
        server.stop().await;
    }
}

fn series(recorder: &PrometheusRecorder) -> HashMap<String, f64> {
    recorder
        .handle()
        .render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (n, v) = l.rsplit_once(' ').unwrap();
            (n.to_owned(), v.parse().unwrap())
        })
        .collect()
}

fn calls(method: &str, outcome: &str) -> String {
    format!(
        "{}{{direction=\"incoming\",method=\"{method}\",outcome=\"{outcome}\"}}",
        telemetry::CALLS_TOTAL
    )
}

/// current_thread, one slot: a cancel of a call answered earlier in the burst (its free
/// deferred), a reused id, a refused call, then a call that holds the slot and one refused
/// `Overloaded`: the slot count stays exact and nothing is counted `cancelled`.
#[tokio::test(flavor = "current_thread")]
async fn a_cancel_of_a_call_whose_free_is_deferred() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let (server, _drops) = shop_server(Config::default().max_in_flight_calls(1)).await;
    let mut raw = RawPeer::handshaken(server.addr).await;
    let mut burst = Vec::new();
    burst.extend(frame(&call_payload(1, 0, "in_flight", ())));
    burst.extend(frame(&encode(&Message::Cancel { id: 1 })));
    burst.extend(frame(&call_payload(1, 0, "in_flight", ())));
    burst.extend(frame(&call_payload(1, 0, "in_flight", ())));
    burst.extend(frame(&call_payload(7, 99, "in_flight", ())));
    burst.extend(frame(&encode(&Message::Cancel { id: 1 })));
    burst.extend(frame(&call_payload(2, 0, "forever", ())));
    burst.extend(frame(&call_payload(3, 0, "in_flight", ())));
    raw.send(&burst).await;
    for want in [1u64, 1, 1] {
        let (m, v) = raw.read_message().await;
        assert!(
            matches!(m, Message::Answer { id, .. } if id == want),
            "{m:?}"
        );
        assert_eq!(decode_value::<usize>(&v), 1);
    }
    let (m, _) = raw.read_message().await;
    common::assert_error(&m, 7, RemoteErrorKind::NoSuchObject, "");
    let (m, _) = raw.read_message().await;
    common::assert_error(&m, 3, RemoteErrorKind::Overloaded, "");
    raw.send(&frame(&encode(&Message::Cancel { id: 2 }))).await;
    let (m, v) = raw.call(4, 0, "in_flight", ()).await;
    assert!(matches!(m, Message::Answer { id: 4, .. }), "{m:?}");
    assert_eq!(decode_value::<usize>(&v), 1);
    let value = series(&recorder);
    assert_eq!(
        value.get(&calls("in_flight", "ok")),
        Some(&4.0),
        "{value:?}"
    );
    assert_eq!(
        value.get(&calls("in_flight", "cancelled")),
        None,
        "{value:?}"
    );
    drop(raw);
    server.stop().await;
}

/// current_thread: the reader ends mid-burst (a frame that does not decode) right after a call
/// answered in its first poll: its answer still goes out, and a graceful stop does not hang.
#[tokio::test(flavor = "current_thread")]
async fn the_reader_ending_mid_burst_after_a_deferred_free() {
    let (server, _drops) = shop_server(Config::default()).await;
    let mut raw = RawPeer::handshaken(server.addr).await;
    let mut burst = Vec::new();
    burst.extend(frame(&call_payload(1, 0, "in_flight", ())));
    burst.extend(frame(&[0xff; 3]));
    raw.send(&burst).await;
    let (m, _) = raw.read_message().await;
    assert!(matches!(m, Message::Answer { id: 1, .. }), "{m:?}");
    raw.expect_closed().await;
    within("stop", server.stop()).await;
}

/// current_thread: a graceful shutdown begun by a handler in the middle of a burst (the
/// calls before it had their frees deferred): every call of the burst is answered, then the
/// connection closes, and the server stops.
#[tokio::test(flavor = "current_thread")]
async fn a_drain_begun_mid_burst() {
    struct Stopper(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);
    impl Shop for Stopper {
        async fn remote_make(&self, _pad: u32) -> (ThingRef, Vec<u8>) {
            unreachable!()
        }
        async fn remote_blob(&self, pad: u32) -> Vec<u8> {
            if pad == 0 {
                let _ = self.0.lock().unwrap().take().map(|tx| tx.send(()));
            }
            vec![9; pad as usize]
        }
        async fn remote_in_flight(&self) -> usize {
            0
        }
        async fn remote_exported(&self) -> usize {
            0
        }
        async fn remote_forever(&self) {}
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = Server::bind(
        "127.0.0.1:0",
        ShopRef::new(Stopper(std::sync::Mutex::new(Some(tx)))),
    )
    .await
    .unwrap()
    .with_config(Config::default().shutdown_grace(Duration::from_secs(600)));
    let addr = server.local_addr();
    let task = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    let mut raw = RawPeer::handshaken(addr).await;
    let mut burst = Vec::new();
    for id in 1..=50u64 {
        let pad = if id == 25 { 0 } else { id as u32 };
        burst.extend(frame(&call_payload(id, 0, "blob", (pad,))));
    }
    raw.send(&burst).await;
    for id in 1..=50u64 {
        let (m, _) = raw.read_message().await;
        assert!(
            matches!(m, Message::Answer { id: got, .. } if got == id),
            "{m:?}"
        );
    }
    // Within the tests' patience, far less than the grace: the drain does not wait for a call
    // already answered.
    raw.expect_closed().await;
    within("stop", task).await.unwrap();
}

// Both runtimes: a burst with the same id twice, the first call answered at once (current_thread:
// both answered; multi_thread: DuplicateId closes the connection, as before this change).
on_both_runtimes! {
    async fn a_reused_id_in_one_burst() {
        use tokio::io::AsyncReadExt;
        let (server, _drops) = shop_server(Config::default()).await;
        let mut raw = RawPeer::handshaken(server.addr).await;
        let mut burst = Vec::new();
        burst.extend(frame(&call_payload(5, 0, "blob", (3u32,))));
        burst.extend(frame(&call_payload(5, 0, "blob", (4u32,))));
        raw.send(&burst).await;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match raw.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => { got.push(0xEE); break; }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        }).await;
        let closed = got.last() == Some(&0xEE);
        if closed { got.pop(); }
        let frames = common::take_frames(&mut got);
        eprintln!("closed={closed} frames={:?}", frames.iter().map(|f| decode_message(f).0).collect::<Vec<_>>());
        server.stop().await;
    }
}
