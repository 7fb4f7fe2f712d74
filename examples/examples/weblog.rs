//! Push through references: clients subscribe a watcher object to a weblog server, and the
//! server pushes every new log record to all of them by calling it. A client that goes away
//! is dropped from the subscribers without disturbing the others; so is one whose watcher
//! stops answering, after a short deadline, so that it holds up the others only that long.
//!
//! `cargo run -p examples --example weblog`

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use rpc_core::{CallError, Client, Peer, Server, remote};
use tokio::sync::{mpsc, oneshot};

/// How long the server waits for a watcher to take a record. Every call has a deadline
/// (`Config::default_call_timeout`, 10 s, unless set), but a fan-out that waits for its
/// slowest member wants a shorter one.
const WATCHER_DEADLINE: Duration = Duration::from_millis(500);

/// Lives in each client: receives log records.
#[remote]
pub trait Watcher {
    /// A new record of the log.
    async fn remote_record(&self, line: String);
}

/// The weblog server's root object.
#[remote]
pub trait Weblog {
    /// Subscribes `watcher` to every record from now on.
    async fn remote_watch(&self, watcher: WatcherRef);
}

struct Subscription {
    id: u64,
    watcher: WatcherRef,
}

#[derive(Default)]
struct WeblogServer {
    subscribers: Mutex<Vec<Subscription>>,
    next_id: Mutex<u64>,
}

impl Weblog for std::sync::Arc<WeblogServer> {
    async fn remote_watch(&self, watcher: WatcherRef) {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            *next
        };
        // Each push to this watcher gets the deadline, so a client that stops answering (a
        // stopped process, a dead link) holds up a record for the others that long at most.
        let watcher = watcher.with_timeout(WATCHER_DEADLINE);
        self.subscribers
            .lock()
            .unwrap()
            .push(Subscription { id, watcher });
        // Forget the watcher as soon as its client's connection drops.
        if let Some(peer) = Peer::current() {
            let server = std::sync::Arc::clone(self);
            peer.on_disconnect(move |reason| {
                println!("server: watcher {id} left ({reason})");
                server.subscribers.lock().unwrap().retain(|s| s.id != id);
            });
        }
        println!("server: watcher {id} subscribed");
    }
}

impl WeblogServer {
    /// Sends `line` to every subscriber at once; drops those that cannot be reached or did not
    /// answer in time.
    async fn publish(&self, line: &str) {
        let watchers: Vec<(u64, WatcherRef)> = self
            .subscribers
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.id, s.watcher.clone()))
            .collect();
        let results = join_all(watchers.iter().map(|(_, w)| w.record(line.to_owned()))).await;
        let mut gone = Vec::new();
        for ((id, _), result) in watchers.iter().zip(results) {
            match result {
                Ok(()) => continue,
                // Waiting longer would hold up every later record: drop it. (It could
                // subscribe again once it answers.)
                Err(e) if e.is_timeout() => println!(
                    "server: watcher {id} did not answer within {WATCHER_DEADLINE:?}; dropped"
                ),
                Err(e) => println!("server: watcher {id} cannot be reached ({e}); dropped"),
            }
            gone.push(*id);
        }
        if !gone.is_empty() {
            self.subscribers
                .lock()
                .unwrap()
                .retain(|s| !gone.contains(&s.id));
        }
    }
}

/// A client's watcher: forwards records to the client's main task, and stops answering at
/// record `freezes_at`, if set.
struct Forwarder {
    lines: mpsc::UnboundedSender<String>,
    freezes_at: Option<usize>,
    seen: AtomicUsize,
}

impl Watcher for Forwarder {
    async fn remote_record(&self, line: String) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if Some(n) == self.freezes_at {
            // Stands for a client that stopped answering: no answer, ever. (A stopped process
            // would not even see the deadline pass; the server's own timer ends the call.)
            std::future::pending::<()>().await;
        }
        let _ = self.lines.send(line);
    }
}

const RECORDS: usize = 6;

/// The record at which carol's watcher stops answering.
const CAROL_FREEZES_AT: usize = 4;

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let weblog = std::sync::Arc::new(WeblogServer::default());
    let server = Server::bind("127.0.0.1:0", WeblogRef::new(weblog.clone())).await?;
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // Three clients subscribe a watcher each; carol's will stop answering.
    let mut clients = Vec::new();
    for (name, freezes_at) in [
        ("alice", None),
        ("bob", None),
        ("carol", Some(CAROL_FREEZES_AT)),
    ] {
        let client = Client::connect(addr).await?;
        let (lines, rx) = mpsc::unbounded_channel();
        let log: WeblogRef = client.root().await?;
        let watcher = Forwarder {
            lines,
            freezes_at,
            seen: AtomicUsize::new(0),
        };
        log.watch(WatcherRef::new(watcher)).await?;
        clients.push((name, Some(client), rx, freezes_at));
    }

    for n in 1..=RECORDS {
        let line = format!("GET /page/{n} 200");
        println!("server: publishing {line:?}");
        weblog.publish(&line).await;
        for (name, client, rx, freezes_at) in &mut clients {
            if client.is_some() && freezes_at.is_none_or(|at| n < at) {
                let got = rx.recv().await.expect("a watcher missed a record");
                println!("{name}: {got}");
            }
        }
        if n == 2 {
            // bob goes away mid-stream; the others must not notice.
            let (_, client, _, _) = &mut clients[1];
            let bob = client.take().expect("bob is connected");
            let gone = bob.disconnected();
            drop(bob);
            gone.await;
            println!("bob: disconnected");
        }
    }

    let remaining = weblog.subscribers.lock().unwrap().len();
    println!("server: {remaining} watcher still subscribed");
    assert_eq!(remaining, 1, "bob left and carol stopped answering");
    drop(clients);
    let _ = stop.send(());
    serving.await.expect("the server task panicked");
    Ok(())
}
