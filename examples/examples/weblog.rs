//! Push through references: clients subscribe a watcher object to a weblog server, and the
//! server pushes every new log record to all of them by calling it. A client that goes away
//! is dropped from the subscribers without disturbing the others.
//!
//! `cargo run -p examples --example weblog`

use std::sync::Mutex;

use futures::future::join_all;
use rpc_core::{CallError, Client, Peer, Server, remote};
use tokio::sync::{mpsc, oneshot};

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
    /// Sends `line` to every subscriber at once; drops those that cannot be reached.
    async fn publish(&self, line: &str) {
        let watchers: Vec<(u64, WatcherRef)> = self
            .subscribers
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.id, s.watcher.clone()))
            .collect();
        let results = join_all(watchers.iter().map(|(_, w)| w.record(line.to_owned()))).await;
        let gone: Vec<u64> = watchers
            .iter()
            .zip(results)
            .filter(|(_, r)| r.is_err())
            .map(|((id, _), _)| *id)
            .collect();
        if !gone.is_empty() {
            self.subscribers
                .lock()
                .unwrap()
                .retain(|s| !gone.contains(&s.id));
        }
    }
}

/// A client's watcher: forwards records to the client's main task.
struct Forwarder(mpsc::UnboundedSender<String>);

impl Watcher for Forwarder {
    async fn remote_record(&self, line: String) {
        let _ = self.0.send(line);
    }
}

const RECORDS: usize = 6;

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let weblog = std::sync::Arc::new(WeblogServer::default());
    let server = Server::bind("127.0.0.1:0", WeblogRef::new(weblog.clone())).await?;
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // Three clients subscribe a watcher each.
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let client = Client::connect(addr).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let log: WeblogRef = client.root().await?;
        log.watch(WatcherRef::new(Forwarder(tx))).await?;
        clients.push((name, Some(client), rx));
    }

    for n in 1..=RECORDS {
        let line = format!("GET /page/{n} 200");
        println!("server: publishing {line:?}");
        weblog.publish(&line).await;
        for (name, client, rx) in &mut clients {
            if client.is_some() {
                let got = rx.recv().await.expect("a watcher missed a record");
                println!("{name}: {got}");
            }
        }
        if n == 2 {
            // bob goes away mid-stream; the others must not notice.
            let (_, client, _) = &mut clients[1];
            let bob = client.take().expect("bob is connected");
            let gone = bob.disconnected();
            drop(bob);
            gone.await;
            println!("bob: disconnected");
        }
    }

    let remaining = weblog.subscribers.lock().unwrap().len();
    println!("server: {remaining} watchers still subscribed");
    assert_eq!(remaining, 2);
    drop(clients);
    let _ = stop.send(());
    serving.await.expect("the server task panicked");
    Ok(())
}
