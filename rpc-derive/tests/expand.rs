//! The generated code at run time: on local objects (direct calls, no encoding), through the
//! untyped in-process path, and with references travelling over a loopback connection.

use std::time::Duration;

use rpc_core::{CallError, Client, Peer, RemoteErrorKind, RemoteRef, Server, remote};
use serde::{Deserialize, Serialize};

#[path = "ui/pass/many_methods.rs"]
pub mod many_methods;

/// A calculator.
#[remote]
pub trait Calculator {
    /// Adds two numbers; returns the sum and this worker's id.
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
    /// Does nothing.
    async fn remote_ping(&self);
    /// Panics.
    async fn remote_boom(&self) -> u8;
    /// Whether the call came from a peer (`Peer::current()` is set).
    async fn remote_from_peer(&self) -> bool;
    /// Sleeps for `ms` milliseconds.
    async fn remote_sleep(&self, ms: u64);
    /// What arrived: `probe.local` survives only a call that encodes nothing.
    async fn remote_probe(&self, probe: Probe) -> bool;
    /// Not remote.
    fn helper(&self) -> u32 {
        1
    }
}

struct Worker(u32);

impl Calculator for Worker {
    async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) {
        (a + b, self.0)
    }

    async fn remote_ping(&self) {}

    async fn remote_boom(&self) -> u8 {
        panic!("boom")
    }

    async fn remote_from_peer(&self) -> bool {
        Peer::current().is_some()
    }

    async fn remote_sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn remote_probe(&self, probe: Probe) -> bool {
        probe.local
    }
}

/// A value that does not survive encoding: `local` is skipped, so it decodes as `false`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Probe {
    #[serde(skip)]
    local: bool,
}

/// A job: a reference inside a struct.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    calc: CalculatorRef,
    a: i64,
    b: i64,
}

/// Takes and returns calculator references.
#[remote]
pub trait Pool {
    /// Calls `calc`.
    async fn remote_run(&self, calc: CalculatorRef, a: i64, b: i64) -> Result<(i64, u32), String>;
    /// Runs a job (a reference inside a struct).
    async fn remote_job(&self, job: Job) -> Result<(i64, u32), String>;
    /// Sends the references back.
    async fn remote_echo(&self, calcs: Vec<CalculatorRef>) -> Vec<CalculatorRef>;
    /// A calculator that lives with the pool, if any.
    async fn remote_own(&self, want: bool) -> Option<CalculatorRef>;
    /// Whether the pool's own calculator, called directly from this handler, sees a peer.
    async fn remote_own_sees_peer(&self) -> bool;
    /// Whether `calc` is a local object from here (`true`) or a proxy.
    async fn remote_holds_local(&self, calc: CalculatorRef) -> bool;
}

struct LocalPool(CalculatorRef);

impl Pool for LocalPool {
    async fn remote_run(&self, calc: CalculatorRef, a: i64, b: i64) -> Result<(i64, u32), String> {
        calc.calculate(a, b).await.map_err(|e| e.to_string())
    }

    async fn remote_job(&self, job: Job) -> Result<(i64, u32), String> {
        job.calc
            .calculate(job.a, job.b)
            .await
            .map_err(|e| e.to_string())
    }

    async fn remote_echo(&self, calcs: Vec<CalculatorRef>) -> Vec<CalculatorRef> {
        calcs
    }

    async fn remote_own(&self, want: bool) -> Option<CalculatorRef> {
        want.then(|| self.0.clone())
    }

    async fn remote_own_sees_peer(&self) -> bool {
        self.0.from_peer().await.unwrap()
    }

    async fn remote_holds_local(&self, calc: CalculatorRef) -> bool {
        calc.is_local()
    }
}

#[tokio::test]
async fn calls_a_local_object_through_its_ref() {
    let calc = CalculatorRef::new(Worker(7));
    assert_eq!(calc.calculate(1, 2).await.unwrap(), (3, 7));
    calc.ping().await.unwrap();
    assert_eq!(CalculatorRef::INTERFACE, "Calculator");
    assert_eq!(Worker(7).helper(), 1);
}

#[tokio::test]
async fn non_remote_methods_cannot_be_called() {
    let calc = CalculatorRef::new(Worker(7));
    for name in ["helper", "remote_calculate", "remote_ping", "new", "object"] {
        let result = calc.object().call_remote::<_, u32>(name, ()).await;
        assert!(
            matches!(
                result,
                Err(CallError::Remote {
                    kind: RemoteErrorKind::NoSuchMethod,
                    ..
                })
            ),
            "{name}: {result:?}"
        );
    }
}

#[tokio::test]
async fn wrong_arguments_are_a_remote_error_not_a_panic() {
    let calc = CalculatorRef::new(Worker(7));
    let result = calc
        .object()
        .call_remote::<_, (i64, u32)>("calculate", ("one", 2))
        .await;
    assert!(
        matches!(
            result,
            Err(CallError::Remote {
                kind: RemoteErrorKind::BadArguments,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn every_accepted_form_works() {
    many_methods::exercise().await;
}

#[tokio::test]
async fn a_local_reference_calls_its_object_directly() {
    let calc = CalculatorRef::new(Worker(7));
    // Nothing is encoded: a skipped field keeps its value...
    assert!(calc.probe(Probe { local: true }).await.unwrap());
    // ...which the untyped call, encoded as if it crossed a connection, loses.
    let encoded: bool = calc
        .object()
        .call_remote("probe", (Probe { local: true },))
        .await
        .unwrap();
    assert!(!encoded);
    assert!(!calc.from_peer().await.unwrap());
    assert!(calc.is_local());
    assert!(calc.peer().is_none());
}

#[tokio::test]
async fn a_panic_in_a_direct_call_is_a_remote_error() {
    let calc = CalculatorRef::new(Worker(7));
    let result = calc.boom().await;
    assert!(
        matches!(
            result,
            Err(CallError::Remote {
                kind: RemoteErrorKind::Panicked,
                ..
            })
        ),
        "{result:?}"
    );
    // The object is still usable.
    assert_eq!(calc.calculate(1, 1).await.unwrap(), (2, 7));
}

#[tokio::test]
async fn with_timeout_bounds_each_call() {
    let calc = CalculatorRef::new(Worker(7));
    let quick = calc.with_timeout(Duration::from_millis(20));
    let result = quick.sleep(60_000).await;
    assert!(
        matches!(result, Err(CallError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(quick.calculate(2, 3).await.unwrap(), (5, 7));
    assert!(quick.same_object(&calc));
    // The original reference has no deadline.
    calc.sleep(30).await.unwrap();
}

#[tokio::test]
async fn references_are_arguments_and_results_in_process() {
    let own = CalculatorRef::new(Worker(1));
    let pool = PoolRef::new(LocalPool(own.clone()));
    let calc = CalculatorRef::new(Worker(7));

    assert_eq!(pool.run(calc.clone(), 1, 2).await.unwrap(), Ok((3, 7)));
    let job = Job {
        calc: calc.clone(),
        a: 4,
        b: 5,
    };
    assert_eq!(pool.job(job.clone()).await.unwrap(), Ok((9, 7)));
    let back = pool.echo(vec![calc.clone(), own.clone()]).await.unwrap();
    assert!(back[0].same_object(&calc) && back[1].same_object(&own));
    assert!(pool.own(true).await.unwrap().unwrap().same_object(&own));
    assert!(pool.own(false).await.unwrap().is_none());
    assert!(pool.holds_local(calc.clone()).await.unwrap());

    // The same through the untyped, encoded in-process path: references travel as themselves.
    let untyped = pool.object();
    let result: Result<(i64, u32), String> = untyped.call_remote("job", (job,)).await.unwrap();
    assert_eq!(result, Ok((9, 7)));
    let back: Vec<CalculatorRef> = untyped
        .call_remote("echo", (vec![calc.clone()],))
        .await
        .unwrap();
    assert!(back[0].same_object(&calc));
    let own_back: Option<CalculatorRef> = untyped.call_remote("own", (true,)).await.unwrap();
    assert!(own_back.unwrap().same_object(&own));
}

#[tokio::test]
async fn references_travel_over_a_connection() {
    let own = CalculatorRef::new(Worker(1));
    let server = Server::bind("127.0.0.1:0", PoolRef::new(LocalPool(own)))
        .await
        .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());

    let client = Client::connect(addr).await.unwrap();
    let pool: PoolRef = client.root().await.unwrap();
    assert!(!pool.is_local());
    let calc = CalculatorRef::new(Worker(7));

    // The server calls back the client's object over the same connection.
    assert_eq!(pool.run(calc.clone(), 1, 2).await.unwrap(), Ok((3, 7)));
    assert!(!pool.holds_local(calc.clone()).await.unwrap());
    let job = Job {
        calc: calc.clone(),
        a: 4,
        b: 5,
    };
    assert_eq!(pool.job(job).await.unwrap(), Ok((9, 7)));
    // A reference to a server object is a proxy that calls over the connection.
    let remote = pool.own(true).await.unwrap().unwrap();
    assert!(!remote.is_local());
    assert!(remote.peer().is_some());
    assert_eq!(remote.calculate(2, 2).await.unwrap(), (4, 1));
    assert!(remote.from_peer().await.unwrap());
    // A proxy sent back to its owner arrives there as the owner's local object.
    assert!(pool.holds_local(remote.clone()).await.unwrap());
    let result = remote.boom().await;
    assert!(
        matches!(
            result,
            Err(CallError::Remote {
                kind: RemoteErrorKind::Panicked,
                ..
            })
        ),
        "{result:?}"
    );

    client.close();
    serving.abort();
}

#[tokio::test]
async fn a_reference_returned_to_its_owner_arrives_as_the_original() {
    let server = Server::bind(
        "127.0.0.1:0",
        PoolRef::new(LocalPool(CalculatorRef::new(Worker(1)))),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());

    let client = Client::connect(addr).await.unwrap();
    let pool: PoolRef = client.root().await.unwrap();
    let calc = CalculatorRef::new(Worker(7));
    let back = pool.echo(vec![calc.clone(), calc.clone()]).await.unwrap();
    assert!(back.iter().all(|r| r.is_local() && r.same_object(&calc)));

    client.close();
    serving.abort();
}

#[tokio::test]
async fn a_direct_call_inside_a_handler_has_no_peer() {
    let server = Server::bind(
        "127.0.0.1:0",
        PoolRef::new(LocalPool(CalculatorRef::new(Worker(1)))),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let serving = tokio::spawn(server.run());

    let client = Client::connect(addr).await.unwrap();
    let pool: PoolRef = client.root().await.unwrap();
    assert!(!pool.own_sees_peer().await.unwrap());

    client.close();
    serving.abort();
}
