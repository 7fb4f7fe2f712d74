//! Pass-by-reference: objects as arguments and results both ways, identity on the way back,
//! local handles, lifetimes (decref, the decref race, the export cap, release on
//! disconnect), over loopback TCP and over the in-memory transport.

mod common;

use common::on_both_runtimes;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use common::{Item, ListenerRef, Recorder, ThingRef, within};
use rpc_core::{CallError, Client, Config, Peer, RemoteErrorKind, RemoteRef, Server, remote};
use tokio::sync::mpsc;

/// The server's root object.
#[remote]
pub trait Hub {
    /// Calls `listener.notify(n)` back; returns its answer.
    async fn remote_call_back(&self, listener: ListenerRef, n: u32) -> Result<u32, String>;
    /// Returns the reference it was given.
    async fn remote_bounce(&self, listener: ListenerRef) -> ListenerRef;
    /// Returns the references it was given, nested.
    async fn remote_bounce_many(
        &self,
        listeners: Vec<Option<ListenerRef>>,
    ) -> Vec<Option<ListenerRef>>;
    /// A new object, exported to the caller.
    async fn remote_make(&self) -> ThingRef;
    /// The same object every time.
    async fn remote_keep(&self) -> ThingRef;
    /// How many objects the server exports on the caller's connection.
    async fn remote_exported(&self) -> usize;
    /// Accepts a reference and drops it.
    async fn remote_take(&self, thing: ThingRef);
}

struct HubObject {
    next: AtomicU64,
    dropped: mpsc::UnboundedSender<u64>,
    kept: ThingRef,
}

impl HubObject {
    fn new() -> (HubObject, mpsc::UnboundedReceiver<u64>) {
        let (dropped, drops) = mpsc::unbounded_channel();
        let kept = ThingRef::new(Item {
            serial: 0,
            dropped: dropped.clone(),
        });
        let hub = HubObject {
            next: AtomicU64::new(1),
            dropped,
            kept,
        };
        (hub, drops)
    }
}

impl Hub for HubObject {
    async fn remote_call_back(&self, listener: ListenerRef, n: u32) -> Result<u32, String> {
        listener.notify(n).await.map_err(|e| e.to_string())
    }

    async fn remote_bounce(&self, listener: ListenerRef) -> ListenerRef {
        listener
    }

    async fn remote_bounce_many(
        &self,
        listeners: Vec<Option<ListenerRef>>,
    ) -> Vec<Option<ListenerRef>> {
        listeners
    }

    async fn remote_make(&self) -> ThingRef {
        ThingRef::new(Item {
            serial: self.next.fetch_add(1, Ordering::Relaxed),
            dropped: self.dropped.clone(),
        })
    }

    async fn remote_keep(&self) -> ThingRef {
        self.kept.clone()
    }

    async fn remote_exported(&self) -> usize {
        Peer::current().map_or(0, |p| p.exported_objects())
    }

    async fn remote_take(&self, thing: ThingRef) {
        drop(thing);
    }
}

/// The two transports every test here runs over.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    InMemory,
}

/// A hub server and a connected client; everything stops when dropped.
struct Setup {
    client: Client,
    hub: HubRef,
    drops: mpsc::UnboundedReceiver<u64>,
    seen: HashSet<u64>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Setup {
    async fn new(transport: Transport, server_config: Config, client_config: Config) -> Setup {
        let (hub, drops) = HubObject::new();
        let root = HubRef::new(hub);
        let (client, server) = match transport {
            Transport::Tcp => {
                let server = Server::bind("127.0.0.1:0", root)
                    .await
                    .unwrap()
                    .with_config(server_config);
                let addr = server.local_addr();
                let server = tokio::spawn(server.run());
                let client = within("connect", Client::connect_with(addr, client_config))
                    .await
                    .unwrap();
                (client, server)
            }
            Transport::InMemory => {
                let (a, b) = tokio::io::duplex(64 * 1024);
                let server = tokio::spawn(async move {
                    let _ = rpc_core::serve_connection(a, root, server_config, "test").await;
                });
                let client = within("connect", Client::over(b, client_config))
                    .await
                    .unwrap();
                (client, server)
            }
        };
        let hub = client.root().await.unwrap();
        Setup {
            client,
            hub,
            drops,
            seen: HashSet::new(),
            server,
        }
    }

    async fn default(transport: Transport) -> Setup {
        Setup::new(transport, Config::default(), Config::default()).await
    }

    /// Waits until the server reports `serial` dropped (drops may come in any order).
    async fn dropped(&mut self, serial: u64) {
        let Setup { drops, seen, .. } = self;
        within("an object's drop", async {
            while !seen.contains(&serial) {
                let dropped = drops.recv().await.expect("the drop channel closed");
                seen.insert(dropped);
            }
        })
        .await;
    }

    /// Waits until the server exports `n` objects on this connection.
    async fn exported_becomes(&self, n: usize) {
        within("the export count", async {
            loop {
                if self.hub.exported().await.unwrap() == n {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
}

const BOTH: [Transport; 2] = [Transport::Tcp, Transport::InMemory];

on_both_runtimes! {
    async fn the_server_calls_back_an_object_of_the_client() {
        for transport in BOTH {
            let s = Setup::default(transport).await;
            let (seen, mut calls) = mpsc::unbounded_channel();
            let listener = ListenerRef::new(Recorder { seen });
            for n in 1..=3 {
                let answer = within("call_back", s.hub.call_back(listener.clone(), n)).await;
                assert_eq!(answer.unwrap(), Ok(n * 2), "{transport:?}");
                assert_eq!(calls.recv().await, Some(n));
            }
            // The client exports the listener while the server holds no proxy of it... and the
            // server dropped its proxies after each call: the client's table is empty again.
            within("the client's exports to drain", async {
                while s.client.peer().exported_objects() != 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_sent_back_arrives_as_the_original_object() {
    for transport in BOTH {
        let s = Setup::default(transport).await;
        let (seen, _calls) = mpsc::unbounded_channel();
        let a = ListenerRef::new(Recorder { seen: seen.clone() });
        let b = ListenerRef::new(Recorder { seen });

        let back = s.hub.bounce(a.clone()).await.unwrap();
        assert!(back.is_local(), "{transport:?}");
        assert!(back.same_object(&a));
        assert!(!back.same_object(&b));

        let many = s
            .hub
            .bounce_many(vec![
                Some(a.clone()),
                None,
                Some(b.clone()),
                Some(a.clone()),
            ])
            .await
            .unwrap();
        assert_eq!(many.len(), 4);
        assert!(many[0].as_ref().unwrap().same_object(&a));
        assert!(many[1].is_none());
        assert!(many[2].as_ref().unwrap().same_object(&b));
        assert!(many[3].as_ref().unwrap().same_object(&a));
        // Calls on it go straight to the object: no network, no peer.
        assert_eq!(back.notify(5).await.unwrap(), 10);
    }
}

#[tokio::test]
async fn a_local_reference_calls_its_object_directly() {
    let (seen, mut calls) = mpsc::unbounded_channel();
    let listener = ListenerRef::new(Recorder { seen });
    assert!(listener.is_local());
    assert!(listener.peer().is_none());
    assert_eq!(listener.notify(21).await.unwrap(), 42);
    assert_eq!(calls.recv().await, Some(21));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_of_another_connection_is_refused() {
    let first = Setup::default(Transport::Tcp).await;
    let second = Setup::default(Transport::Tcp).await;
    let thing = first.hub.make().await.unwrap();
    assert!(!thing.is_local());

    let refused = second.hub.take(thing.clone()).await;
    match refused {
        Err(CallError::Encode { message, .. }) => {
            assert!(message.contains("does not proxy"), "{message}")
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
    // Nothing else is lost: both connections and the reference still work.
    assert_eq!(thing.serial().await.unwrap(), 1);
    assert_eq!(second.hub.exported().await.unwrap(), 1);
    first.hub.take(thing).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_released_when_the_last_proxy_drops() {
    for transport in BOTH {
        let mut s = Setup::default(transport).await;
        assert_eq!(s.hub.exported().await.unwrap(), 1, "only the root");
        let thing = s.hub.make().await.unwrap();
        let serial = thing.serial().await.unwrap();
        assert_eq!(s.hub.exported().await.unwrap(), 2);
        assert_eq!(s.client.peer().imported_objects(), 1);

        let clone = thing.clone();
        drop(thing);
        // One clone is still alive: the object must still work.
        assert_eq!(clone.serial().await.unwrap(), serial);
        drop(clone);
        s.dropped(serial).await;
        s.exported_becomes(1).await;
        assert_eq!(s.client.peer().imported_objects(), 0);
    }
}

on_both_runtimes! {
    async fn exported_objects_are_released_when_the_connection_drops() {
        for transport in BOTH {
            let mut s = Setup::default(transport).await;
            let things = futures::future::try_join_all((0..3).map(|_| s.hub.make()))
                .await
                .unwrap();
            let mut serials = Vec::new();
            for t in &things {
                serials.push(t.serial().await.unwrap());
            }
            s.client.close();
            for serial in serials {
                s.dropped(serial).await;
            }
            // Calls on the proxies fail at once, asynchronously.
            for t in &things {
                assert!(matches!(
                    t.serial().await,
                    Err(CallError::Disconnected { .. })
                ));
            }
        }
    }
}

/// A reference re-sent while the decref of its previous copy is in flight must not be
/// released early: the exporter counts references sent, the receiver references received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_resent_during_a_decref_is_not_released() {
    for transport in BOTH {
        let s = Setup::default(transport).await;
        for round in 0..200 {
            let first = s.hub.keep().await.unwrap();
            // The call goes out first, then (on drop) the decref of `first`: the server
            // re-sends the object before it hears that the previous copy is gone.
            let again = s.hub.keep();
            drop(first);
            let second = again.await.unwrap();
            let serial = within("a call on the re-sent reference", second.serial()).await;
            assert_eq!(serial.unwrap(), 0, "{transport:?}, round {round}");
            // And the other order: the decref first, then the re-send.
            drop(second);
            let third = s.hub.keep().await.unwrap();
            assert_eq!(third.serial().await.unwrap(), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_cap_fails_the_call_that_would_exceed_it() {
    for transport in BOTH {
        // The root counts: room for two more objects.
        let server_config = Config::default().max_exported_objects(3);
        let client_config = Config::default().max_exported_objects(1);
        let mut s = Setup::new(transport, server_config, client_config).await;
        let one = s.hub.make().await.unwrap();
        let two = s.hub.make().await.unwrap();
        match s.hub.make().await {
            Err(CallError::Remote {
                kind: RemoteErrorKind::BadAnswer,
                message,
            }) => assert!(message.contains("max_exported_objects"), "{message}"),
            other => panic!("expected the cap, got {other:?}"),
        }
        // The connection lives on; freeing one makes room again.
        let serial = one.serial().await.unwrap();
        drop(one);
        s.dropped(serial).await;
        s.exported_becomes(2).await;
        let three = s.hub.make().await.unwrap();
        assert!(three.serial().await.unwrap() > serial);
        drop((two, three));

        // The client's cap: one object at a time.
        let (seen, _calls) = mpsc::unbounded_channel();
        let a = ListenerRef::new(Recorder { seen: seen.clone() });
        let b = ListenerRef::new(Recorder { seen });
        match s.hub.bounce_many(vec![Some(a.clone()), Some(b)]).await {
            Err(e @ CallError::Encode { .. }) => {
                // What failed, why and what to do, without bincode's `OtherString("...")`.
                let text = e.to_string();
                assert!(
                    text.starts_with("could not encode arguments: this side already exports 1 "),
                    "{text}"
                );
                assert!(text.contains("max_exported_objects"), "{text}");
                assert!(text.contains("raise the limit"), "{text}");
                assert!(
                    !text.contains("OtherString") && !text.contains('"'),
                    "{text}"
                );
            }
            other => panic!("expected the client's cap, got {other:?}"),
        }
        // The failed call exported nothing for good; a call with one object works.
        assert!(s.hub.bounce(a.clone()).await.unwrap().same_object(&a));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_callbacks_fire_once_and_can_be_taken_back() {
    let s = Setup::default(Transport::Tcp).await;
    let fired = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let (reason_tx, mut reason) = mpsc::unbounded_channel::<String>();

    let counter = fired.clone();
    let _kept = s.client.on_disconnect(move |why| {
        counter.fetch_add(1, Ordering::SeqCst);
        let _ = reason_tx.send(why.to_owned());
    });
    let counter = cancelled.clone();
    let hook = s.client.on_disconnect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert!(hook.cancel());

    // Through a reference too.
    let thing = s.hub.make().await.unwrap();
    let peer = thing.peer().expect("a remote reference has a peer");
    let lost = peer.disconnected();

    s.server.abort();
    let why = within("the disconnect callback", reason.recv())
        .await
        .unwrap();
    assert!(!why.is_empty());
    within("the reference's disconnect", lost).await;
    assert!(!peer.is_connected());
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(cancelled.load(Ordering::SeqCst), 0);

    // Registered after the loss: runs at once, once.
    let late = Arc::new(AtomicUsize::new(0));
    let counter = late.clone();
    let late_hook = s.client.on_disconnect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(late.load(Ordering::SeqCst), 1);
    assert!(!late_hook.cancel());
    assert!(matches!(
        thing.serial().await,
        Err(CallError::Disconnected { .. })
    ));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
}

/// A reference to an object of another trait is refused where a typed reference is expected,
/// with a message that names both traits; nothing else is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_of_the_wrong_trait_is_refused() {
    let (dropped, _drops) = mpsc::unbounded_channel();
    let thing = ThingRef::new(Item { serial: 9, dropped });
    let (hub, _) = HubObject::new();
    let local_hub = HubRef::new(hub);
    for transport in BOTH {
        let s = Setup::default(transport).await;
        for hub in [&s.hub, &local_hub] {
            // Untyped, so the caller can send what the trait would not let it.
            let wrong = hub
                .object()
                .call_remote::<_, Result<u32, String>>("call_back", (thing.clone(), 3u32))
                .await;
            match wrong {
                Err(CallError::Remote {
                    kind: RemoteErrorKind::BadArguments,
                    message,
                }) => assert!(
                    message.contains("expected a reference to a `Listener`, got one to a `Thing`"),
                    "{message}"
                ),
                other => panic!("expected BadArguments, got {other:?}"),
            }
        }
        let (seen, _calls) = mpsc::unbounded_channel();
        let listener = ListenerRef::new(Recorder { seen });
        assert_eq!(s.hub.call_back(listener, 4).await.unwrap(), Ok(8));
    }
}

/// A root that keeps the listeners it is given: a proxy of its own peer, held by the object
/// the connection holds. Reports its drop.
#[remote]
trait Keeper {
    async fn remote_keep(&self, listener: ListenerRef);
}

struct Keep {
    kept: std::sync::Mutex<Vec<ListenerRef>>,
    dropped: mpsc::UnboundedSender<()>,
}

impl Keeper for Keep {
    async fn remote_keep(&self, listener: ListenerRef) {
        self.kept.lock().unwrap().push(listener);
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        let _ = self.dropped.send(());
    }
}

on_both_runtimes! {
    /// The connection lets go of its root when it closes, even a root holding a proxy of the
    /// peer (the proxy holds the connection): nothing of either is left.
    async fn a_root_holding_a_proxy_of_its_peer_is_dropped_when_the_connection_closes() {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (dropped, mut drops) = mpsc::unbounded_channel();
        let root = KeeperRef::new(Keep {
            kept: std::sync::Mutex::new(Vec::new()),
            dropped,
        });
        let server = tokio::spawn(rpc_core::serve_connection(
            server_io,
            root,
            Config::default(),
            "in-memory test peer",
        ));
        let client = within("the handshake", Client::over(client_io, Config::default()))
            .await
            .unwrap();
        let keeper: KeeperRef = client.root().await.unwrap();
        let (seen, _seen) = mpsc::unbounded_channel();
        within("keep", keeper.keep(ListenerRef::new(Recorder { seen })))
            .await
            .unwrap();
        client.close();
        within("serve_connection to return", server)
            .await
            .unwrap()
            .expect("serve_connection failed");
        assert_eq!(within("the root's drop", drops.recv()).await, Some(()));
        drop((keeper, client));
    }
}

/// A peer's call whose arguments name a reference its frame's table does not have (here the
/// table is empty, and no context is set to decode with) is `BadArguments` saying so; the
/// connection lives on.
#[tokio::test]
async fn a_reference_index_beyond_the_frames_table_is_bad_arguments() {
    let (hub, _drops) = HubObject::new();
    let server = Server::bind("127.0.0.1:0", HubRef::new(hub)).await.unwrap();
    let addr = server.local_addr();
    let server = tokio::spawn(server.run());
    let mut raw = common::RawPeer::handshaken(addr).await;
    // A `ListenerRef` travels as a `u32` index into the frame's table.
    let (answer, _) = raw.call(1, 0, "bounce", (0u32,)).await;
    match answer {
        rpc_core::protocol::Message::Error { id: 1, error } => {
            assert_eq!(error.kind, RemoteErrorKind::BadArguments, "{error:?}");
            assert!(
                error
                    .message
                    .contains("reference 0 is not in the message's table"),
                "{error:?}"
            );
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
    let (answer, _) = raw.call(2, 0, "exported", ()).await;
    assert!(
        matches!(answer, rpc_core::protocol::Message::Answer { id: 2, .. }),
        "{answer:?}"
    );
    server.abort();
}
