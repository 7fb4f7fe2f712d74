//! The blocking facade, from a thread that has no async runtime; and refusing, with a clear
//! error, on a thread that has one.

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

/// A server on a thread (and runtime) of its own; it stops when the sender is used or dropped.
fn server_thread() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    thread::JoinHandle<()>,
) {
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
    (addr_rx.recv().unwrap(), stop, server)
}

#[test]
fn a_program_without_a_runtime_calls_typed_methods() {
    let (addr, stop, server) = server_thread();

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

/// Inside a runtime (here `#[tokio::test]`'s), connecting fails at once with an error that
/// says what happened and what to use instead, not tokio's "Cannot start a runtime from within
/// a runtime" panic.
#[tokio::test]
async fn connecting_inside_a_runtime_is_a_clear_error() {
    let (addr, stop, server) = server_thread();
    let e = blocking::Client::connect(addr).unwrap_err();
    assert!(
        matches!(e, CallError::BlockingInRuntime { method: "connect" }),
        "{e:?}"
    );
    let text = e.to_string();
    for says in [
        "blocking::Client::connect was called on a thread of a tokio runtime",
        "use the async rpc_core::Client",
        "std::thread::spawn",
        "spawn_blocking",
    ] {
        assert!(text.contains(says), "{text}");
    }
    stop.send(()).unwrap();
    tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
}

/// A client made outside any runtime and then used inside one refuses each call with the
/// same error (`wait`, which has no `Result`, panics with its message), and can still be
/// dropped there.
#[test]
fn a_client_used_inside_a_runtime_refuses_and_drops_cleanly() {
    let (addr, stop, server) = server_thread();
    let client = blocking::Client::connect(addr).unwrap();
    let adder: AdderRef = client.root().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let refused = client.call(adder.add(1, 2)).unwrap_err();
        assert!(matches!(
            refused,
            CallError::BlockingInRuntime { method: "call" }
        ));
        let refused = client.root::<AdderRef>().unwrap_err();
        assert!(matches!(
            refused,
            CallError::BlockingInRuntime { method: "root" }
        ));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            client.wait(adder.add(1, 2))
        }))
        .unwrap_err();
        let message = panicked
            .downcast_ref::<String>()
            .expect("a formatted panic");
        assert!(
            message.contains("blocking::Client::wait was called on a thread of a tokio runtime"),
            "{message}"
        );
    });
    // Outside the runtime again, the same client works.
    assert_eq!(client.call(adder.add(2, 3)).unwrap(), 5);
    runtime.block_on(async move { drop((adder, client)) });

    stop.send(()).unwrap();
    server.join().unwrap();
}
