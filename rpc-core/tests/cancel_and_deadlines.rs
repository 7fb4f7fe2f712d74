//! In-flight work never outlives its reason to exist: a dropped call future, a closed
//! connection and a passed deadline all drop the handler at the callee.

mod common;

use common::on_both_runtimes;

use std::time::{Duration, Instant};

use common::{RawPeer, decode_message, encode, frame, within};
use rpc_core::protocol::{Message, WireRef};
use rpc_core::{CallError, Client, Config, RemoteErrorKind, Server, remote};
use tokio::sync::mpsc;

/// Handlers that never finish by themselves.
#[remote]
pub trait Sleeper {
    /// Reports its start, then waits for ever; reports its drop.
    async fn remote_forever(&self, tag: u32);
    /// Reports its start, then works for `secs` seconds; reports its drop.
    async fn remote_work(&self, tag: u32, secs: u64) -> u32;
}

#[derive(Debug, PartialEq)]
enum Event {
    Started(u32),
    Dropped(u32, Instant),
}

struct Reporter {
    events: mpsc::UnboundedSender<Event>,
}

struct OnDrop(u32, mpsc::UnboundedSender<Event>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.1.send(Event::Dropped(self.0, Instant::now()));
    }
}

impl Sleeper for Reporter {
    async fn remote_forever(&self, tag: u32) {
        let _guard = OnDrop(tag, self.events.clone());
        let _ = self.events.send(Event::Started(tag));
        std::future::pending::<()>().await;
    }

    async fn remote_work(&self, tag: u32, secs: u64) -> u32 {
        let _guard = OnDrop(tag, self.events.clone());
        let _ = self.events.send(Event::Started(tag));
        // The handler's work, not synchronisation.
        tokio::time::sleep(Duration::from_secs(secs)).await;
        tag
    }
}

struct Setup {
    addr: std::net::SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Setup {
    async fn new() -> Setup {
        let (events_tx, events) = mpsc::unbounded_channel();
        let server = Server::bind(
            "127.0.0.1:0",
            SleeperRef::new(Reporter { events: events_tx }),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        Setup {
            addr,
            events,
            server: tokio::spawn(server.run()),
        }
    }

    async fn client(&self) -> (Client, SleeperRef) {
        let client = within("connect", Client::connect(self.addr)).await.unwrap();
        let root = client.root().await.unwrap();
        (client, root)
    }

    async fn next(&mut self) -> Event {
        within("a handler event", self.events.recv()).await.unwrap()
    }
}

on_both_runtimes! {
    async fn dropping_the_call_future_drops_the_handler() {
        let mut s = Setup::new().await;
        let (_client, sleeper) = s.client().await;
        let call = tokio::spawn(sleeper.forever(1));
        assert_eq!(s.next().await, Event::Started(1));
        let cancelled_at = Instant::now();
        call.abort();
        match s.next().await {
            Event::Dropped(1, at) => {
                let after = at.duration_since(cancelled_at);
                println!("the handler was dropped {after:?} after the call future");
            }
            other => panic!("expected the drop, got {other:?}"),
        }
        // The connection is fine.
        let work = sleeper.work(2, 0).await.unwrap();
        assert_eq!(work, 2);
    }
}

on_both_runtimes! {
    async fn closing_the_connection_drops_its_handlers() {
        let mut s = Setup::new().await;
        let (client, sleeper) = s.client().await;
        let calls: Vec<_> = (1..=3)
            .map(|tag| tokio::spawn(sleeper.forever(tag)))
            .collect();
        for _ in 1..=3 {
            assert!(matches!(s.next().await, Event::Started(_)));
        }
        client.close();
        let mut dropped = Vec::new();
        for _ in 1..=3 {
            match s.next().await {
                Event::Dropped(tag, _) => dropped.push(tag),
                other => panic!("expected drops, got {other:?}"),
            }
        }
        dropped.sort();
        assert_eq!(dropped, [1, 2, 3]);
        for call in calls {
            let result = within("a failed call", call).await.unwrap();
            assert!(matches!(result, Err(CallError::Disconnected { .. })));
        }
    }
}

on_both_runtimes! {
    async fn a_50ms_deadline_on_a_10s_handler() {
        let mut s = Setup::new().await;
        let (_client, sleeper) = s.client().await;
        let started = Instant::now();
        let result = within(
            "the deadline",
            sleeper.with_timeout(Duration::from_millis(50)).work(7, 10),
        )
        .await;
        let waited = started.elapsed();
        match result {
            Err(CallError::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(50)),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            waited < Duration::from_secs(5),
            "the caller waited {waited:?}"
        );
        assert_eq!(s.next().await, Event::Started(7));
        assert!(matches!(s.next().await, Event::Dropped(7, _)));
        // The reference without a deadline is unchanged.
        assert_eq!(sleeper.work(8, 0).await.unwrap(), 8);

        // A connection-wide default applies to every call.
        let config = Config::default().default_call_timeout(Duration::from_millis(50));
        let client = within("connect", Client::connect_with(s.addr, config))
            .await
            .unwrap();
        let sleeper: SleeperRef = client.root().await.unwrap();
        assert!(matches!(
            sleeper.work(9, 10).await,
            Err(CallError::Timeout { .. })
        ));
    }
}

on_both_runtimes! {
    /// The deadline travels with the call: the callee stops the work by itself, even if the
    /// caller never cancels (here a hand-made peer that only waits for the answer).
    async fn the_callee_stops_the_work_when_the_deadline_passes() {
        let mut s = Setup::new().await;
        let mut raw = RawPeer::handshaken(s.addr).await;
        let mut call = encode(&Message::Call {
            id: 1,
            object: 0,
            method: "work".into(),
            deadline_ms: Some(50),
            refs: Vec::<WireRef>::new(),
        });
        call.extend_from_slice(&encode(&(3u32, 10u64)));
        raw.send(&frame(&call)).await;
        assert_eq!(s.next().await, Event::Started(3));
        assert!(matches!(s.next().await, Event::Dropped(3, _)));
        let (answer, _) = decode_message(&raw.read_frame().await);
        match answer {
            Message::Error { id: 1, error } => {
                assert_eq!(error.kind, RemoteErrorKind::DeadlineExceeded)
            }
            other => panic!("expected a deadline error, got {other:?}"),
        }
    }
}
