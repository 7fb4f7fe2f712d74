//! Calls over loopback TCP: answers, concurrency, remote errors, overload, frame limits,
//! cancellation.

mod common;

use common::*;
use rpc_core::{CallError, Config, RemoteErrorKind};

/// The seed's demo: three workers on three ports, one client each, results totalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_calculators_on_three_ports_total_their_results() {
    let mut servers = Vec::new();
    let mut calcs = Vec::new();
    let mut clients = Vec::new();
    for id in 1..=3u32 {
        let (server, _probe) = TestServer::calc(id).await;
        let (client, calc) = server.client().await;
        servers.push(server);
        calcs.push(calc);
        clients.push(client);
    }
    let addrs: std::collections::HashSet<_> = servers.iter().map(|s| s.addr).collect();
    assert_eq!(addrs.len(), 3, "three distinct ports");

    let jobs = [(1i64, 2i64), (30, 40), (500, 600)];
    let calls = calcs
        .iter()
        .zip(jobs)
        .map(|(calc, (a, b))| calc.calculate(a, b));
    let answers = within("three answers", futures::future::join_all(calls)).await;

    let mut total = 0;
    for (i, answer) in answers.into_iter().enumerate() {
        let (sum, worker) = answer.expect("a calculation failed");
        assert_eq!(worker, i as u32 + 1, "answer {i} comes from its own server");
        assert_eq!(sum, jobs[i].0 + jobs[i].1);
        total += sum;
    }
    assert_eq!(total, 3 + 70 + 1100);

    // try_join_all as well: all succeed, in order.
    let calls = calcs.iter().map(|calc| calc.calculate(1, 1));
    let answers = within("try_join_all", futures::future::try_join_all(calls))
        .await
        .unwrap();
    assert_eq!(answers, vec![(2, 1), (2, 2), (2, 3)]);

    drop(clients);
    for server in servers {
        server.stop().await;
    }
}

/// 1,000 calls in flight on one connection, each handler taking a random time: every
/// answer goes to its own call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_each_get_their_own_answer() {
    let (server, _probe) = TestServer::calc(1).await;
    let (client, calc) = server.client().await;

    thousand_echoes(&calc).await;
    assert_serves(&calc, 1).await;

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_no_such_method_and_the_connection_lives() {
    let (server, _probe) = TestServer::calc(5).await;
    let (client, calc) = server.client().await;

    let result = within("a call", client.call_remote::<_, ()>("nope", ())).await;
    match &result {
        Err(CallError::Remote {
            kind: RemoteErrorKind::NoSuchMethod,
            message,
        }) => assert!(message.contains("nope"), "{message}"),
        other => panic!("expected NoSuchMethod, got {other:?}"),
    }
    // The `remote_` prefix is not part of the name on the wire.
    let result = within(
        "a call",
        client.call_remote::<_, (i64, u32)>("remote_calculate", (1, 2)),
    );
    assert_remote(result.await, RemoteErrorKind::NoSuchMethod);

    assert_serves(&calc, 5).await;
    let untyped = within(
        "a call",
        client.call_remote::<_, (i64, u32)>("calculate", (1, 2)),
    )
    .await;
    assert_eq!(untyped.unwrap(), (3, 5));

    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_reported_and_the_connection_lives() {
    let (server, _probe) = TestServer::calc(5).await;
    let (client, calc) = server.client().await;

    // A string where two integers are expected (long enough not to decode as two varints).
    let result = client.call_remote::<_, (i64, u32)>("calculate", ("not a number".to_string(),));
    let result = within("a call", result).await;
    match &result {
        Err(CallError::Remote {
            kind: RemoteErrorKind::BadArguments,
            message,
        }) => assert!(message.contains("calculate"), "{message}"),
        other => panic!("expected BadArguments, got {other:?}"),
    }
    // Too few arguments.
    let result = client.call_remote::<_, (i64, u32)>("calculate", (1i64,));
    assert_remote(
        within("a call", result).await,
        RemoteErrorKind::BadArguments,
    );
    // Too many arguments.
    let result = client.call_remote::<_, (i64, u32)>("calculate", (1i64, 2i64, 3i64));
    assert_remote(
        within("a call", result).await,
        RemoteErrorKind::BadArguments,
    );

    assert_serves(&calc, 5).await;
    drop(client);
    server.stop().await;
}

/// An answer that does not decode as what the caller expects is a `Decode` error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_of_the_wrong_type_is_a_decode_error() {
    let (server, _probe) = TestServer::calc(5).await;
    let (client, calc) = server.client().await;

    let result = client.call_remote::<_, String>("blob", (3u32,));
    match within("a call", result).await {
        // Vec<u8> [3, AB, AB, AB] is not valid UTF-8.
        Err(CallError::Decode { .. }) => {}
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_serves(&calc, 5).await;
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_is_reported_and_everything_keeps_working() {
    let (server, _probe) = TestServer::calc(6).await;
    let (client, calc) = server.client().await;

    // Panics at the first poll (inside the connection's reader) and after an await (in a task).
    for after_await in [false, true] {
        let result = within("a call", calc.panic(after_await)).await;
        match &result {
            Err(CallError::Remote {
                kind: RemoteErrorKind::Panicked,
                message,
            }) => assert!(message.contains("panic"), "{message}"),
            other => panic!("expected Panicked, got {other:?}"),
        }
        assert_serves(&calc, 6).await;
    }
    // Many panics at once, mixed with good calls.
    let panics = (0..50).map(|i| calc.panic(i % 2 == 0));
    let goods = (0..50).map(|i| calc.calculate(i, 1));
    let (panics, goods) = within(
        "mixed calls",
        futures::future::join(
            futures::future::join_all(panics),
            futures::future::join_all(goods),
        ),
    )
    .await;
    for p in panics {
        assert_remote(p, RemoteErrorKind::Panicked);
    }
    for (i, g) in goods.into_iter().enumerate() {
        assert_eq!(g.unwrap(), (i as i64 + 1, 6));
    }

    // A new connection to the same server works too.
    let (client2, calc2) = server.client().await;
    assert_serves(&calc2, 6).await;
    assert_serves(&calc, 6).await;

    drop((client, client2));
    server.stop().await;
}

/// Beyond `max_in_flight_calls` a call is answered `Overloaded` at once; the running ones
/// are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_in_flight_limit_are_overloaded() {
    let config = Config::default().max_in_flight_calls(4);
    let (server, mut probe) = TestServer::calc_with(7, config).await;
    let (client, calc) = server.client().await;

    // Spawned: a call is sent when its future is first polled.
    let running: Vec<_> = (0..4).map(|tag| tokio::spawn(calc.wait(tag))).collect();
    assert_eq!(probe.started(4).await, vec![0, 1, 2, 3]);

    match within("the 5th call", calc.calculate(1, 1)).await {
        Err(CallError::Remote {
            kind: RemoteErrorKind::Overloaded,
            message,
        }) => assert!(
            message.contains('4'),
            "the message names the limit: {message}"
        ),
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert_remote(
        within("the 6th call", calc.wait(99)).await,
        RemoteErrorKind::Overloaded,
    );

    probe.open_gate();
    let answers = within("the 4 running calls", futures::future::join_all(running)).await;
    let answers: Vec<u64> = answers.into_iter().map(|a| a.unwrap().unwrap()).collect();
    assert_eq!(answers, vec![0, 1, 2, 3]);

    assert_serves(&calc, 7).await;
    let again: Vec<_> = (10..14).map(|tag| calc.wait(tag)).collect();
    let again = within("4 more calls", futures::future::try_join_all(again)).await;
    assert_eq!(again.unwrap(), vec![10, 11, 12, 13]);

    drop(client);
    server.stop().await;
}

/// With a limit of one call in flight, calls made one after the other (each waiting for the
/// previous answer) must never be refused: the slot of a call is free once its answer is out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_calls_at_an_in_flight_limit_of_one_are_never_overloaded() {
    let config = Config::default().max_in_flight_calls(1);
    let (server, _probe) = TestServer::calc_with(8, config).await;
    let (client, calc) = server.client().await;

    for i in 0..2000u64 {
        // delay 0: the handler yields once, so it runs as a task of its own.
        let answer = within("a call", calc.echo_after(i, 0)).await;
        match answer {
            Ok(v) => assert_eq!(v, i),
            Err(e) => panic!("call {i} of a strictly sequential series failed: {e}"),
        }
    }

    drop(client);
    server.stop().await;
}

/// Dropping a call future cancels the handler at the callee.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_call_cancels_the_remote_handler() {
    let (server, mut probe) = TestServer::calc(9).await;
    let (client, calc) = server.client().await;

    // Spawned: a call is sent when its future is first polled; aborting the task drops it.
    let call = tokio::spawn(calc.wait(1));
    assert_eq!(probe.started(1).await, vec![1]);
    call.abort();
    assert_eq!(probe.next().await, Event::Dropped(1));

    // The connection is fine, and a call that is not dropped still completes.
    assert_serves(&calc, 9).await;
    let call = tokio::spawn(calc.wait(2));
    assert_eq!(probe.started(1).await, vec![2]);
    probe.open_gate();
    assert_eq!(within("a call", call).await.unwrap().unwrap(), 2);
    assert_eq!(probe.next().await, Event::Finished(2));

    drop(client);
    server.stop().await;
}

/// A client of `server` whose frame limit is 1,024 bytes.
async fn connect_with_small_frames(server: &TestServer) -> rpc_core::Client {
    let config = Config::default().max_frame_length(1024);
    within(
        "connect",
        rpc_core::Client::connect_with(server.addr, config),
    )
    .await
    .unwrap()
}

/// A call over the caller's frame limit fails at the caller, naming the limit; nothing is
/// sent and the connection lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_over_the_frame_limit_fails_at_the_caller() {
    let (server, _probe) = TestServer::calc(10).await;
    let client = connect_with_small_frames(&server).await;
    let calc: CalculatorRef = client.root().await.unwrap();

    let err = within("a call", calc.size(vec![7; 2000]))
        .await
        .expect_err("a 2,000-byte argument cannot fit a 1,024-byte frame");
    match &err {
        CallError::FrameTooLarge { limit, size, .. } => {
            assert_eq!(*limit, 1024);
            assert!(*size > 2000, "size {size}");
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("1024"), "{err}");
    assert!(!err.is_disconnected());

    assert!(client.is_connected());
    assert_eq!(
        within("a call", calc.size(vec![7; 100])).await.unwrap(),
        100
    );
    assert_serves(&calc, 10).await;

    drop(client);
    server.stop().await;
}

/// A call over the frame limit that would hand over a local object exports nothing: the
/// export its encoding made is rolled back with the frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_the_frame_limit_exports_nothing() {
    let (server, _probe) = TestServer::calc(10).await;
    let client = connect_with_small_frames(&server).await;
    let exported = client.peer().exported_objects();
    let (dropped, mut drops) = tokio::sync::mpsc::unbounded_channel();
    let thing = ThingRef::new(Item { serial: 7, dropped });
    let call = client.call_remote::<_, usize>("size", (thing, vec![7u8; 2000]));
    let err = within("a call", call)
        .await
        .expect_err("a 2,000-byte argument cannot fit a 1,024-byte frame");
    assert!(
        matches!(err, CallError::FrameTooLarge { .. }),
        "expected FrameTooLarge, got {err:?}"
    );
    assert_eq!(client.peer().exported_objects(), exported);
    // Nothing holds the object any more: the call's arguments are gone, its export too.
    assert_eq!(within("the object's drop", drops.recv()).await, Some(7));
    assert!(client.is_connected());
    drop(client);
    server.stop().await;
}

/// An answer over the callee's frame limit becomes a `BadAnswer` error; the connection lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_over_the_frame_limit_is_a_bad_answer() {
    let config = Config::default().max_frame_length(1024);
    let (server, _probe) = TestServer::calc_with(11, config).await;
    let (client, calc) = server.client().await;

    match within("a call", calc.blob(2000)).await {
        Err(CallError::Remote {
            kind: RemoteErrorKind::BadAnswer,
            message,
        }) => assert!(
            message.contains("1024"),
            "the message names the limit: {message}"
        ),
        other => panic!("expected BadAnswer, got {other:?}"),
    }
    assert!(client.is_connected());
    assert_eq!(
        within("a call", calc.blob(100)).await.unwrap(),
        vec![0xAB; 100]
    );
    assert_serves(&calc, 11).await;

    drop(client);
    server.stop().await;
}

/// A call to a local object (LocalAsRemote) runs directly.
#[tokio::test]
async fn local_reference_calls_the_object_directly() {
    let (calc, _probe) = Calc::root(12);
    assert!(rpc_core::RemoteRef::object(&calc).is_local());
    assert_eq!(calc.calculate(1, 2).await.unwrap(), (3, 12));
    assert_remote(calc.panic(true).await, RemoteErrorKind::Panicked);
}
