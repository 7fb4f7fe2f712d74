//! Edges of the wire, probed with hand-written frames: values nested too deep (both ways), an
//! error kind from a newer peer, and object ids that were never handed over.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use rpc_core::protocol::{Message, ROOT_OBJECT, WireRef};
use rpc_core::{CallError, Client, Config, RemoteErrorKind, Server, remote};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A recursive type: each `Node` is one more level of nesting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tree {
    /// The innermost value.
    Leaf(u64),
    /// One more level around a tree.
    Node(Box<Tree>),
}

/// `Node` `nodes` times around `Leaf(7)`, built by hand as bincode 2 (standard config) writes
/// it: a variant index is a varint `u32`, one byte below 251.
fn tree_bytes(nodes: usize) -> Vec<u8> {
    let mut bytes = vec![1u8; nodes]; // Node
    bytes.extend_from_slice(&[0, 7]); // Leaf, then 7u64
    bytes
}

/// The value [`tree_bytes`] encodes (only ever built shallow: dropping a deep one recurses).
fn tree(nodes: usize) -> Tree {
    (0..nodes).fold(Tree::Leaf(7), |tree, _| Tree::Node(Box::new(tree)))
}

fn height(tree: &Tree) -> u64 {
    match tree {
        Tree::Leaf(_) => 0,
        Tree::Node(inner) => 1 + height(inner),
    }
}

/// The root object of the servers here (real or raw).
#[remote]
pub trait Forest {
    /// How many `Node`s are around the leaf.
    async fn remote_height(&self, tree: Tree) -> u64;
    /// A tree of `nodes` nodes.
    async fn remote_grow(&self, nodes: u64) -> Tree;
    /// A new `Thing`.
    async fn remote_make(&self) -> ThingRef;
    /// A new `Thing` and `len` bytes: over the frame limit, the answer fails after the thing
    /// was encoded in it.
    async fn remote_make_with_blob(&self, len: u32) -> (ThingRef, Vec<u8>);
    /// Takes a reference to an object of the caller (only the raw server answers it).
    async fn remote_listen(&self, listener: ListenerRef) -> u32;
}

struct Woods {
    next: AtomicU64,
    dropped: mpsc::UnboundedSender<u64>,
}

impl Woods {
    fn item(&self) -> ThingRef {
        ThingRef::new(Item {
            serial: self.next.fetch_add(1, Ordering::Relaxed),
            dropped: self.dropped.clone(),
        })
    }
}

impl Forest for Woods {
    async fn remote_height(&self, tree: Tree) -> u64 {
        height(&tree)
    }

    async fn remote_grow(&self, nodes: u64) -> Tree {
        tree(nodes as usize)
    }

    async fn remote_make(&self) -> ThingRef {
        self.item()
    }

    async fn remote_make_with_blob(&self, len: u32) -> (ThingRef, Vec<u8>) {
        (self.item(), vec![0xAB; len as usize])
    }

    async fn remote_listen(&self, listener: ListenerRef) -> u32 {
        listener.notify(1).await.unwrap_or(0)
    }
}

/// A forest server on `127.0.0.1:0`; stopped by [`ForestServer::stop`] (or aborted when
/// dropped, in a failing test).
struct ForestServer {
    addr: SocketAddr,
    /// The serial of every `Thing` dropped.
    drops: mpsc::UnboundedReceiver<u64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for ForestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForestServer {
    async fn start(config: Config) -> ForestServer {
        let (dropped, drops) = mpsc::unbounded_channel();
        let woods = Woods {
            next: AtomicU64::new(1),
            dropped,
        };
        let server = Server::bind("127.0.0.1:0", ForestRef::new(woods))
            .await
            .expect("bind 127.0.0.1:0")
            .with_config(config);
        let addr = server.local_addr();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = stop.await;
        }));
        ForestServer {
            addr,
            drops,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn client(&self) -> (Client, ForestRef) {
        let client = within("connect", Client::connect(self.addr))
            .await
            .expect("connect");
        let forest = client.root().await.expect("root");
        (client, forest)
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().expect("stopped twice").send(());
        within("the server to stop", &mut self.task)
            .await
            .expect("the server task failed");
    }
}

async fn assert_height(forest: &ForestRef, nodes: usize) {
    let answer = within("a height call", forest.height(tree(nodes))).await;
    assert_eq!(answer.unwrap(), nodes as u64);
}

// ---------------------------------------------------------------------------------------------
// 6. Deep recursion.
// ---------------------------------------------------------------------------------------------

/// An argument nested 20,000 deep (20 KB) is `BadArguments` naming the depth limit, not a
/// stack overflow that aborts the process (what the code before the limit did); so is a
/// truncated one. The same connection and every other client are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_argument_is_bad_arguments_not_a_stack_overflow() {
    let server = ForestServer::start(Config::default()).await;
    let (before_client, before) = server.client().await;
    assert_height(&before, 3).await;

    let mut raw = RawPeer::handshaken(server.addr).await;
    let deep = tree_bytes(20_000);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "20,000 deep",
            deep.clone(),
            "128 levels deep (max_decode_depth)",
        ),
        (
            "20,000 deep, its last bytes cut off",
            deep[..deep.len() - 2].to_vec(),
            "128 levels deep (max_decode_depth)",
        ),
        (
            "20,000 Node tags and nothing else",
            vec![1u8; 20_000],
            "128 levels deep (max_decode_depth)",
        ),
        (
            "100 deep, its last byte cut off",
            tree_bytes(100)[..101].to_vec(),
            "the bytes end before the value does",
        ),
    ];
    for (round, (what, args, says)) in cases.into_iter().enumerate() {
        let id = 10 * round as u64 + 1;
        raw.send(&frame(&call_payload_raw(id, ROOT_OBJECT, "height", &args)))
            .await;
        let (answer, _) = raw.read_message().await;
        assert_error(&answer, id, RemoteErrorKind::BadArguments, says);
        println!("{what}: {answer:?}");
        // The same connection still serves.
        let (answer, value) = raw.call(id + 1, ROOT_OBJECT, "height", (tree(100),)).await;
        assert!(
            matches!(answer, Message::Answer { id: got, .. } if got == id + 1),
            "{what}: {answer:?}"
        );
        assert_eq!(decode_value::<u64>(&value), 100, "{what}");
    }

    // The deepest argument that fits: the tuple of arguments (1) holding the tree (1 per
    // `Node`, 2 for the `Leaf`) is 128 levels deep with 125 `Node`s.
    assert_height(&before, 125).await;
    let too_deep = within("a call one level too deep", before.height(tree(126))).await;
    assert_remote(too_deep, RemoteErrorKind::BadArguments);
    let (after_client, after) = server.client().await;
    assert_height(&after, 5).await;
    drop((raw, before_client, after_client));
    server.stop().await;
}

/// The answer direction: a raw server answers a typed call with a tree 20,000 deep (or such
/// a tree cut short). The client gets `CallError::Decode` naming the limit, and its
/// connection lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_answer_is_a_decode_error_not_a_stack_overflow() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let forest: ForestRef = client.root().await.unwrap();
    let deep = tree_bytes(20_000);
    for value in [deep.clone(), deep[..deep.len() - 2].to_vec()] {
        let call = tokio::spawn(forest.grow(20_000));
        let (id, _) = match raw.read_message().await {
            (Message::Call { id, method, .. }, args) if method == "grow" => (id, args),
            other => panic!("expected the grow call, got {other:?}"),
        };
        let mut payload = encode(&Message::Answer {
            id,
            refs: Vec::new(),
        });
        payload.extend_from_slice(&value);
        raw.send(&frame(&payload)).await;
        match within("the deep answer", call).await.unwrap() {
            Err(CallError::Decode { message }) => {
                assert!(message.contains("max_decode_depth"), "{message}");
                println!("the client refused the deep answer: {message}");
            }
            other => panic!("expected a Decode error, got {other:?}"),
        }

        // The connection is still up: a normal answer on it is taken.
        let call = tokio::spawn(forest.grow(3));
        let id = match raw.read_message().await {
            (Message::Call { id, method, .. }, _) if method == "grow" => id,
            other => panic!("expected the grow call, got {other:?}"),
        };
        raw.answer(id, &tree(3)).await;
        assert_eq!(
            within("a normal answer", call).await.unwrap().unwrap(),
            tree(3)
        );
        assert!(client.is_connected());
    }
    client.close();
    raw.expect_closed().await;
}

// ---------------------------------------------------------------------------------------------
// 7. An error kind from a newer peer.
// ---------------------------------------------------------------------------------------------

/// A raw server answers with an error whose kind this version does not know (a newer peer):
/// the caller gets `RemoteErrorKind::Other` with the message, and the connection stays up.
/// (Before `Other`, the frame did not decode and the connection closed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_error_kind_is_other_and_the_connection_lives() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let forest: ForestRef = client.root().await.unwrap();
    // 200 is a one-byte varint, 1,000 a three-byte one, u32::MAX a five-byte one.
    for kind in [200u32, 1_000, u32::MAX] {
        let call = tokio::spawn(forest.height(tree(1)));
        let id = match raw.read_message().await {
            (Message::Call { id, .. }, _) => id,
            other => panic!("expected the call, got {other:?}"),
        };
        let text = format!("kind {kind}, from the future");
        let mut payload = encode(&2u32); // Message::Error's variant index
        payload.extend_from_slice(&encode(&id));
        payload.extend_from_slice(&encode(&kind)); // RemoteErrorKind's variant index
        payload.extend_from_slice(&encode(&text));
        raw.send(&frame(&payload)).await;
        match within("the error answer", call).await.unwrap() {
            Err(CallError::Remote {
                kind: RemoteErrorKind::Other,
                message,
            }) => assert_eq!(message, text),
            other => panic!("expected a remote error of kind Other, got {other:?}"),
        }

        // The connection is up: the next call gets its answer.
        let call = tokio::spawn(forest.height(tree(2)));
        let id = match raw.read_message().await {
            (Message::Call { id, .. }, _) => id,
            other => panic!("expected the call, got {other:?}"),
        };
        raw.answer(id, &2u64).await;
        assert_eq!(within("the answer", call).await.unwrap().unwrap(), 2);
        assert!(client.is_connected());
    }
    client.close();
    raw.expect_closed().await;
}

// ---------------------------------------------------------------------------------------------
// 8. An object is callable only once a frame handing it over is queued.
// ---------------------------------------------------------------------------------------------

/// A handler returns a fresh object *and* an answer over the frame limit: the answer is
/// `BadAnswer`, the object was never handed over, and no id it could have had is callable.
/// (Before, it was exported as its answer was encoded, and a peer guessing the next id could
/// call it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_in_a_failed_answer_is_never_callable() {
    let mut server = ForestServer::start(Config::default().max_frame_length(1024)).await;
    let mut raw = RawPeer::handshaken(server.addr).await;
    let (answer, _) = raw.call(1, ROOT_OBJECT, "make_with_blob", (2048u32,)).await;
    assert_error(&answer, 1, RemoteErrorKind::BadAnswer, "frame limit");
    // Its object (serial 1) was released, and none of the next ids reaches anything.
    let dropped = within("the object's drop", server.drops.recv()).await;
    assert_eq!(dropped, Some(1));
    for object in 1..=5 {
        let (answer, _) = raw.call(10 + object, object, "serial", ()).await;
        assert_error(
            &answer,
            10 + object,
            RemoteErrorKind::NoSuchObject,
            &format!("no object {object}"),
        );
    }

    // A frame that hands an object over makes it callable.
    let (answer, value) = raw.call(20, ROOT_OBJECT, "make", ()).await;
    let id = match answer {
        Message::Answer { id: 20, refs } => match refs.as_slice() {
            [WireRef::SenderExports { id, interface }] if interface == "Thing" => *id,
            other => panic!("expected one Thing reference, got {other:?}"),
        },
        other => panic!("expected an answer, got {other:?}"),
    };
    assert_eq!(decode_value::<u32>(&value), 0, "index 0 of the table");
    assert_ne!(id, 1, "the id of the object never handed over was reused");
    let (answer, value) = raw.call(21, id, "serial", ()).await;
    assert!(
        matches!(answer, Message::Answer { id: 21, .. }),
        "{answer:?}"
    );
    assert_eq!(decode_value::<u64>(&value), 2);
    let (answer, _) = raw.call(22, 1, "serial", ()).await;
    assert_error(&answer, 22, RemoteErrorKind::NoSuchObject, "no object 1");

    drop(raw);
    server.stop().await;
}

/// A call that passes a local object by reference exports it only when the call is first
/// polled: until then, a raw server guessing the client's ids reaches nothing; once the call
/// frame is out, the id it names is callable. A call dropped unpolled never exports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_argument_is_callable_only_once_its_call_is_polled() {
    let (client, mut raw) = RawServer::with_client(Config::default()).await;
    let forest: ForestRef = client.root().await.unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let listener = ListenerRef::new(Recorder { seen: seen_tx });

    drop(forest.listen(listener.clone()));
    let call = forest.listen(listener.clone());
    let mut next_id = 100;
    let mut probe = async |raw: &mut RawPeer, object: u64| {
        next_id += 1;
        let (answer, value) = raw.call(next_id, object, "notify", (5u32,)).await;
        (next_id, answer, value)
    };
    for object in 1..=3 {
        let (id, answer, _) = probe(&mut raw, object).await;
        assert_error(
            &answer,
            id,
            RemoteErrorKind::NoSuchObject,
            &format!("no object {object}"),
        );
    }
    assert!(seen.try_recv().is_err(), "the listener was called");

    // Polled: the call goes out, and the object it names is callable.
    let call = tokio::spawn(call);
    let (call_id, exported) = match raw.read_message().await {
        (
            Message::Call {
                id, method, refs, ..
            },
            _,
        ) if method == "listen" => match refs.as_slice() {
            [
                WireRef::SenderExports {
                    id: object,
                    interface,
                },
            ] if interface == "Listener" => (id, *object),
            other => panic!("expected one Listener reference, got {other:?}"),
        },
        other => panic!("expected the listen call, got {other:?}"),
    };
    assert!(
        (1..=3).contains(&exported),
        "exported as {exported}, not one of the ids probed"
    );
    let (id, answer, value) = probe(&mut raw, exported).await;
    assert!(
        matches!(answer, Message::Answer { id: got, .. } if got == id),
        "{answer:?}"
    );
    assert_eq!(decode_value::<u32>(&value), 10);
    assert_eq!(within("the listener's call", seen.recv()).await, Some(5));
    for object in (1..=3).filter(|&o| o != exported) {
        let (id, answer, _) = probe(&mut raw, object).await;
        assert_error(&answer, id, RemoteErrorKind::NoSuchObject, "no object");
    }

    raw.answer(call_id, &10u32).await;
    assert_eq!(within("the listen call", call).await.unwrap().unwrap(), 10);
    client.close();
    raw.expect_closed().await;
}
