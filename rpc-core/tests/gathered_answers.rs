//! The answers a `current_thread` server's reader gathers in a burst (see `conn::gathered`)
//! behave as answers queued one by one: in the order their calls ended, also next to an error
//! answer; written before the connection closes when a later handler of the burst closes it;
//! and a value whose `Serialize` ignores a refused write is never cut short.

mod common;

use common::*;
use rpc_core::protocol::{Message, ROOT_OBJECT};
use rpc_core::{Peer, Server, remote};
use serde::{Deserialize, Serialize, Serializer};

/// A value that keeps serializing after an element failed to (serde lets it).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Careless(pub Vec<Vec<u8>>);

impl Serialize for Careless {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for element in &self.0 {
            let _ = seq.serialize_element(element);
        }
        seq.end()
    }
}

/// The server's root object.
#[remote]
pub trait Answers {
    /// Returns `x`.
    async fn remote_ping(&self, x: u64) -> u64;
    /// Panics (an error answer).
    async fn remote_fail(&self) -> u64;
    /// Closes the caller's connection, then answers.
    async fn remote_hang_up(&self) -> u64;
    /// Three elements of 2,000 bytes: more than a gathered answer may hold.
    async fn remote_careless(&self) -> Careless;
}

struct Answerer;

impl Answers for Answerer {
    async fn remote_ping(&self, x: u64) -> u64 {
        x
    }

    async fn remote_fail(&self) -> u64 {
        panic!("this handler fails at once")
    }

    async fn remote_hang_up(&self) -> u64 {
        Peer::current().expect("called by a peer").close();
        0
    }

    async fn remote_careless(&self) -> Careless {
        Careless(vec![vec![1; 2_000], vec![2; 2_000], vec![3; 2_000]])
    }
}

/// A server on this (current_thread) runtime, and a raw peer handshaken with it.
async fn raw_peer() -> (RawPeer, tokio::task::JoinHandle<()>) {
    let server = Server::bind("127.0.0.1:0", AnswersRef::new(Answerer))
        .await
        .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());
    (RawPeer::handshaken(addr).await, serving)
}

/// The call id an answer or error answer is for.
fn answered(message: &Message<'_>) -> u64 {
    match message {
        Message::Answer { id, .. } | Message::Error { id, .. } => *id,
        other => panic!("not an answer: {other:?}"),
    }
}

/// Calls sent in one write, each by id and method (no arguments but a ping's `7`).
fn burst(calls: &[(u64, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for &(id, method) in calls {
        bytes.extend(if method == "ping" {
            frame(&call_payload(id, ROOT_OBJECT, method, (7u64,)))
        } else {
            frame(&call_payload(id, ROOT_OBJECT, method, ()))
        });
    }
    bytes
}

#[tokio::test(flavor = "current_thread")]
async fn an_error_answer_follows_the_answers_gathered_before_it() {
    let (mut raw, serving) = raw_peer().await;
    raw.send(&burst(&[(1, "ping"), (2, "fail"), (3, "ping")]))
        .await;
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(answered(&raw.read_message().await.0));
    }
    assert_eq!(order, [1, 2, 3]);
    serving.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn answers_gathered_before_a_handler_closes_the_connection_are_written() {
    let (mut raw, serving) = raw_peer().await;
    raw.send(&burst(&[(1, "ping"), (2, "ping"), (3, "hang_up")]))
        .await;
    let mut received = within("the close", raw.expect_closed()).await;
    let ids: Vec<u64> = take_frames(&mut received)
        .iter()
        .map(|frame| answered(&decode_message(frame).0))
        .collect();
    assert_eq!(ids, [1, 2], "the answers written before the close");
    serving.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_value_whose_serialize_ignores_a_refused_write_arrives_whole() {
    let (mut raw, serving) = raw_peer().await;
    let (answer, value) = raw.call(1, ROOT_OBJECT, "careless", ()).await;
    assert_eq!(answered(&answer), 1);
    let value: Vec<Vec<u8>> = decode_value(&value);
    assert_eq!(
        value,
        Careless(vec![vec![1; 2_000], vec![2; 2_000], vec![3; 2_000]]).0
    );
    serving.abort();
}
