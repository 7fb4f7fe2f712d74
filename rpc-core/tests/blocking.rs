//! The blocking facade, from a thread that has no async runtime.

use std::thread;

use rpc_core::{CallError, RemoteErrorKind, Server, blocking, remote};

/// Something to call.
#[remote]
pub trait Adder {
    /// `a + b`.
    async fn remote_add(&self, a: i64, b: i64) -> i64;
}

struct A;

impl Adder for A {
    async fn remote_add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

#[test]
fn a_program_without_a_runtime_calls_typed_methods() {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let server = Server::bind("127.0.0.1:0", AdderRef::new(A)).await.unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    let addr = addr_rx.recv().unwrap();

    let client = blocking::Client::connect(addr).unwrap();
    let adder: AdderRef = client.root().unwrap();
    assert_eq!(client.call(adder.add(2, 3)).unwrap(), 5);
    let sums = client
        .wait(futures::future::try_join_all(
            (0..50).map(|n| adder.add(n, n)),
        ))
        .unwrap();
    assert_eq!(sums, (0..50).map(|n| 2 * n).collect::<Vec<_>>());
    let missing: Result<(), CallError> = client.call_remote("subtract", (1, 2));
    assert_eq!(
        missing.unwrap_err().remote_kind(),
        Some(RemoteErrorKind::NoSuchMethod)
    );

    drop(adder);
    drop(client);
    stop.send(()).unwrap();
    server.join().unwrap();
}
