//! The seed's calculator: three servers, each on its own loopback port with its own root
//! object, and a client that calls all of them at once and totals the results.
//!
//! `cargo run -p examples --example calculator`

use futures::future::{join_all, try_join_all};
use rpc_core::{CallError, Client, Server, remote};
use tokio::sync::oneshot;

/// A calculator worker (Twisted PB's classic `Calculator(pb.Root)`).
#[remote]
pub trait Calculator {
    /// Adds `a` and `b`; returns the sum and the id of the worker that did it.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
}

struct Calc {
    id: u32,
}

impl Calculator for Calc {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, self.id)
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    // Three servers on free loopback ports, each stopped through its shutdown channel.
    let mut addrs = Vec::new();
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for id in 1..=3 {
        let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc { id })).await?;
        println!("worker {id} listening on {}", server.local_addr());
        addrs.push(server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        servers.push(tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        })));
    }

    // One client per server; the proxies' methods return futures.
    let mut calculators = Vec::new();
    for addr in &addrs {
        let client = Client::connect(addr).await?;
        calculators.push(client.root::<CalculatorRef>().await?);
    }

    // PB's DeferredList: join_all gives every result, errors included...
    let calls = calculators
        .iter()
        .enumerate()
        .map(|(i, calc)| calc.calculate(10 * i as i64, 1));
    let mut total = 0;
    for result in join_all(calls).await {
        let (sum, worker) = result?;
        println!("worker {worker} answered {sum}");
        total += sum;
    }
    println!("total: {total}");

    // ...try_join_all stops at the first error. Many calls in flight on each connection:
    let calls = (0..300).map(|n| calculators[n % 3].calculate(n as i64, 0));
    let sum: i64 = try_join_all(calls).await?.iter().map(|(s, _)| s).sum();
    println!("sum of 0..300 over three workers: {sum}");
    assert_eq!(sum, (0..300).sum::<i64>());

    for stop in stops {
        let _ = stop.send(());
    }
    for server in servers {
        server.await.expect("a server task panicked");
    }
    Ok(())
}
