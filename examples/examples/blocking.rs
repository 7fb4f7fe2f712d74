//! The blocking facade, for a program without an async runtime of its own (a GUI event loop,
//! a plain command-line tool): connect, get the root object, call typed methods and wait.
//!
//! `cargo run -p examples --example blocking`

use std::thread;

use rpc_core::{CallError, Server, blocking, remote};
use tokio::sync::oneshot;

/// A calculator worker.
#[remote]
pub trait Calculator {
    /// Adds `a` and `b`; returns the sum and the worker's id.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
}

struct Calc;

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, 1)
    }
}

fn main() -> Result<(), CallError> {
    // The server side lives in another thread with its own runtime, as it would in another
    // process; main() below never touches async code.
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let server_thread = thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("could not start a runtime");
        runtime.block_on(async {
            let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc))
                .await
                .expect("could not bind");
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    let addr = addr_rx.recv().expect("the server thread died");

    let client = blocking::Client::connect(addr)?;
    let calc: CalculatorRef = client.root()?;
    let (sum, worker) = client.call(calc.calculate(42, 47))?;
    println!("worker {worker} says 42 + 47 = {sum}");
    assert_eq!(sum, 89);

    // Several calls at once, waited for together.
    let sums = client.wait(futures::future::try_join_all(
        (0..10).map(|n| calc.calculate(n, n)),
    ))?;
    println!("ten calls at once: {sums:?}");

    drop(calc);
    drop(client);
    let _ = stop.send(());
    server_thread.join().expect("the server thread panicked");
    Ok(())
}
