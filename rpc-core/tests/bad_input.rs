//! Bad input from raw TCP peers: the offending connection is closed, every other connection
//! keeps being served, and the process does not abort.

mod common;

use std::time::Duration;

use common::*;
use rpc_core::protocol::{Message, PROTOCOL_VERSION, ROOT_OBJECT};
use rpc_core::{CallError, Client, Config, RemoteErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Runs `bad` against a fresh server, with a good client connected before and one after, and
/// checks that both are served.
async fn with_good_neighbours<F, Fut>(config: Config, bad: F)
where
    F: FnOnce(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (server, _probe) = TestServer::calc_with(3, config).await;
    let (before_client, before) = server.client().await;
    assert_serves(&before, 3).await;

    bad(server.addr).await;

    assert_serves(&before, 3).await;
    let (after_client, after) = server.client().await;
    assert_serves(&after, 3).await;
    assert!(before_client.is_connected());

    drop((before_client, after_client));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_length_header_instead_of_a_hello_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        raw.send(&0xFFFF_FFFFu32.to_be_bytes()).await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_length_header_after_the_handshake_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        raw.send(&0xFFFF_FFFFu32.to_be_bytes()).await;
        raw.send(&[0; 16]).await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_just_over_the_limit_closes_the_connection() {
    let config = Config::default().max_frame_length(1024);
    with_good_neighbours(config, |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        raw.send(&1025u32.to_be_bytes()).await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_instead_of_a_hello_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        raw.send(b"GET / HTTP/1.1\r\n\r\n").await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_magic_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        let mut hello = hello_payload(PROTOCOL_VERSION);
        hello[..4].copy_from_slice(b"PBRX");
        raw.send(&frame(&hello)).await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_of_the_wrong_length_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        let mut hello = hello_payload(PROTOCOL_VERSION).to_vec();
        hello.push(0);
        raw.send(&frame(&hello)).await;
        raw.expect_closed().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_version_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        // The server speaks first...
        let hello = raw.read_frame().await;
        assert_eq!(hello, hello_payload(PROTOCOL_VERSION));
        // ...and we answer with a version from the future.
        raw.send(&frame(&hello_payload(999))).await;
        raw.expect_closed().await;
    })
    .await;
}

/// The client side of a version mismatch: `Client::connect` fails with a `Protocol` error
/// that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_server_of_another_version() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        // Read the client's hello first, so that closing does not reset the connection.
        let mut hello = [0u8; 12];
        stream.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello[4..], &hello_payload(PROTOCOL_VERSION));
        stream.write_all(&frame(&hello_payload(999))).await.unwrap();
        // Wait for the client to hang up.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });

    let result = within("connect", Client::connect(addr)).await;
    match result {
        Err(CallError::Protocol { message }) => {
            assert!(message.contains("version"), "{message}");
            assert!(message.contains("999"), "{message}");
        }
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    within("the fake server to see the client leave", fake)
        .await
        .unwrap();
}

/// The client side of a non-pbrs server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_server_that_is_not_pbrs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 12];
        stream.read_exact(&mut hello).await.unwrap();
        stream.write_all(&frame(b"SSH-2.0-")).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });

    match within("connect", Client::connect(addr)).await {
        Err(CallError::Protocol { message }) => {
            assert!(message.contains("not a pbrs hello"), "{message}")
        }
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    within("the fake server to see the client leave", fake)
        .await
        .unwrap();
}

/// Malformed message headers (after a valid hello) close the connection; none of them makes
/// the server allocate what they declare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_headers_close_the_connection() {
    let mut huge_method = vec![
        0,   // variant Call
        1,   // id
        0,   // object
        253, // method: a string whose length is a u64 varint...
    ];
    huge_method.extend_from_slice(&(1u64 << 60).to_le_bytes()); // ...of 2^60
    huge_method.extend_from_slice(b"calculate");

    let mut huge_u128 = vec![0, 254]; // id as a u128 varint: not a u64
    huge_u128.extend_from_slice(&u128::MAX.to_le_bytes());

    let mut huge_error_message = vec![2, 1, 0, 253]; // Error { id 1, kind 0, message len }
    huge_error_message.extend_from_slice(&(1u64 << 60).to_le_bytes());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a method name of length 2^60", huge_method),
        ("an id that is a u128", huge_u128),
        ("an error message of length 2^60", huge_error_message),
        ("an unknown message variant", vec![200, 1, 2, 3]),
        ("an empty frame", vec![]),
        ("a truncated call header", vec![0, 1]),
    ];
    with_good_neighbours(Config::default(), |addr| async move {
        for (what, payload) in cases {
            let mut raw = RawPeer::handshaken(addr).await;
            raw.send(&frame(&payload)).await;
            let rest = within(what, raw.expect_closed()).await;
            assert!(rest.is_empty(), "{what}: the server answered {rest:?}");
        }
    })
    .await;
}

/// Arguments nested deeper than `Config::max_decode_depth` are `BadArguments` naming the
/// limit; the connection lives on. (With 2 levels a call header and `(i64, i64)` still decode;
/// `(Vec<u8>,)` with an element is 3 deep.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_nested_too_deep_are_bad_arguments() {
    with_good_neighbours(Config::default().max_decode_depth(2), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        match raw.call(1, ROOT_OBJECT, "size", (vec![1u8, 2],)).await.0 {
            Message::Error { id: 1, error } => {
                assert_eq!(error.kind, RemoteErrorKind::BadArguments, "{error:?}");
                assert!(error.message.contains("max_decode_depth"), "{error:?}");
            }
            other => panic!("expected an error answer, got {other:?}"),
        }
        let (answer, _) = raw.call(2, ROOT_OBJECT, "size", (Vec::<u8>::new(),)).await;
        assert!(
            matches!(answer, Message::Answer { id: 2, .. }),
            "{answer:?}"
        );
        let (answer, value) = raw.call(3, ROOT_OBJECT, "calculate", (2i64, 3i64)).await;
        assert!(
            matches!(answer, Message::Answer { id: 3, .. }),
            "{answer:?}"
        );
        assert_eq!(decode_value::<(i64, u32)>(&value), (5, 3));
    })
    .await;
}

/// Huge declared lengths in the *arguments* are `BadArguments`, not a dead connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_declared_length_in_arguments_is_bad_arguments() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        let mut payload = encode(&Message::Call {
            id: 1,
            object: ROOT_OBJECT,
            method: "size".into(),
            deadline_ms: None,
            refs: Vec::new(),
        });
        payload.push(253);
        payload.extend_from_slice(&(1u64 << 60).to_le_bytes());
        payload.extend_from_slice(&[1, 2, 3]);
        raw.send(&frame(&payload)).await;
        match decode_message(&raw.read_frame().await).0 {
            Message::Error { id: 1, error } => {
                assert_eq!(error.kind, RemoteErrorKind::BadArguments, "{error:?}")
            }
            other => panic!("expected an error answer, got {other:?}"),
        }
        // A length that fits the limit but not the frame.
        let (answer, _) = raw.call(2, ROOT_OBJECT, "size", (vec![0u8; 10],)).await;
        assert!(
            matches!(answer, Message::Answer { id: 2, .. }),
            "{answer:?}"
        );
        let mut payload = encode(&Message::Call {
            id: 3,
            object: ROOT_OBJECT,
            method: "size".into(),
            deadline_ms: None,
            refs: Vec::new(),
        });
        payload.push(252);
        payload.extend_from_slice(&(3u32 << 20).to_le_bytes());
        raw.send(&frame(&payload)).await;
        match decode_message(&raw.read_frame().await).0 {
            Message::Error { id: 3, error } => {
                assert_eq!(error.kind, RemoteErrorKind::BadArguments, "{error:?}")
            }
            other => panic!("expected an error answer, got {other:?}"),
        }
        // The raw connection still works.
        let (answer, value) = raw.call(4, ROOT_OBJECT, "calculate", (2i64, 3i64)).await;
        assert!(
            matches!(answer, Message::Answer { id: 4, .. }),
            "{answer:?}"
        );
        assert_eq!(decode_value::<(i64, u32)>(&value), (5, 3));
    })
    .await;
}

/// A call to an object id that was never handed out is answered `NoSuchObject`; the
/// connection keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_object_is_no_such_object_and_the_connection_lives() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        let (answer, _) = raw.call(1, 42, "calculate", (1i64, 2i64)).await;
        match answer {
            Message::Error { id: 1, error } => {
                assert_eq!(error.kind, RemoteErrorKind::NoSuchObject, "{error:?}");
                assert!(error.message.contains("42"), "{error:?}");
            }
            other => panic!("expected an error answer, got {other:?}"),
        }
        let (answer, value) = raw.call(2, ROOT_OBJECT, "calculate", (1i64, 2i64)).await;
        assert!(
            matches!(answer, Message::Answer { id: 2, .. }),
            "{answer:?}"
        );
        assert_eq!(decode_value::<(i64, u32)>(&value), (3, 3));
        // An unknown method over the raw connection, for good measure.
        let (answer, _) = raw.call(3, ROOT_OBJECT, "nope", ()).await;
        match answer {
            Message::Error { id: 3, error } => {
                assert_eq!(error.kind, RemoteErrorKind::NoSuchMethod)
            }
            other => panic!("expected an error answer, got {other:?}"),
        }
        // Pipelined calls, answered in any order.
        let mut burst = Vec::new();
        for id in 10..20u64 {
            burst.extend(frame(&call_payload(
                id,
                ROOT_OBJECT,
                "calculate",
                (id as i64, 0i64),
            )));
        }
        raw.send(&burst).await;
        let mut seen = Vec::new();
        for _ in 10..20 {
            match decode_message(&raw.read_frame().await) {
                (Message::Answer { id, .. }, value) => {
                    assert_eq!(decode_value::<(i64, u32)>(&value), (id as i64, 3));
                    seen.push(id);
                }
                other => panic!("expected an answer, got {other:?}"),
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (10..20).collect::<Vec<_>>());
    })
    .await;
}

/// The peer closes its socket in the middle of a frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_cut_midway_then_eof_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        raw.send(&100u32.to_be_bytes()).await;
        raw.send(&[0; 6]).await;
        raw.stream.shutdown().await.unwrap();
        raw.expect_closed().await;
    })
    .await;
}

/// The peer closes its socket in the middle of the hello.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_cut_midway_then_eof_closes_the_connection() {
    with_good_neighbours(Config::default(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        raw.send(&frame(&hello_payload(PROTOCOL_VERSION))[..7])
            .await;
        raw.stream.shutdown().await.unwrap();
        raw.expect_closed().await;
    })
    .await;
}

fn stalling_config() -> Config {
    Config::default()
        .frame_timeout(Duration::from_millis(200))
        .handshake_timeout(Duration::from_secs(1))
}

/// A peer that sends part of a frame, then nothing, is disconnected after `frame_timeout`:
/// here the partial frame arrives in the same write as the frame before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frame_sent_with_a_complete_one_times_out() {
    with_good_neighbours(stalling_config(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        let mut bytes = frame(&call_payload(1, ROOT_OBJECT, "calculate", (1i64, 1i64)));
        bytes.extend_from_slice(&100u32.to_be_bytes());
        bytes.extend_from_slice(&[0; 6]);
        raw.send(&bytes).await;
        // The answer to the complete call comes, then the server hangs up.
        let rest = raw.expect_closed().await;
        assert!(!rest.is_empty(), "the complete call was answered");
    })
    .await;
}

/// As above, but the partial frame is the first thing after the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frame_right_after_the_handshake_times_out() {
    with_good_neighbours(stalling_config(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        raw.send(&100u32.to_be_bytes()).await;
        raw.send(&[0; 6]).await;
        raw.expect_closed().await;
    })
    .await;
}

/// As above, but the partial frame arrives when the server has answered everything and is
/// idle, waiting for the next frame: the usual case of a slow-loris peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frame_on_an_idle_connection_times_out() {
    with_good_neighbours(stalling_config(), |addr| async move {
        let mut raw = RawPeer::handshaken(addr).await;
        let (answer, _) = raw.call(1, ROOT_OBJECT, "calculate", (1i64, 1i64)).await;
        assert!(
            matches!(answer, Message::Answer { id: 1, .. }),
            "{answer:?}"
        );
        raw.send(&100u32.to_be_bytes()).await;
        raw.send(&[0; 6]).await;
        raw.expect_closed().await;
    })
    .await;
}

/// A peer that sends part of its hello, then nothing, is disconnected after
/// `handshake_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_hello_times_out() {
    with_good_neighbours(stalling_config(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        raw.send(&frame(&hello_payload(PROTOCOL_VERSION))[..7])
            .await;
        raw.expect_closed().await;
    })
    .await;
}

/// A peer that connects and sends nothing at all is disconnected after `handshake_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_times_out_at_the_handshake() {
    with_good_neighbours(stalling_config(), |addr| async move {
        let mut raw = RawPeer::connect(addr).await;
        raw.expect_closed().await;
    })
    .await;
}

/// The accept loop survives many failing connections interleaved with good calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_loop_survives_twenty_bad_connections() {
    let (server, _probe) = TestServer::calc_with(4, stalling_config()).await;
    let (client, calc) = server.client().await;

    for i in 0..20u32 {
        let mut raw = RawPeer::connect(server.addr).await;
        match i % 5 {
            0 => raw.send(&0xFFFF_FFFFu32.to_be_bytes()).await,
            1 => raw.send(b"GET / HTTP/1.1\r\n\r\n").await,
            2 => raw.send(&frame(&hello_payload(PROTOCOL_VERSION + 1))).await,
            3 => {
                raw.send(&frame(&hello_payload(PROTOCOL_VERSION))).await;
                raw.send(&frame(&[200, 0, 0])).await;
            }
            _ => {
                // Connect and vanish: the server sees EOF during the handshake.
                drop(raw);
                assert_serves(&calc, 4).await;
                continue;
            }
        }
        raw.expect_closed().await;
        assert_serves(&calc, 4).await;
        let (fresh_client, fresh) = server.client().await;
        assert_serves(&fresh, 4).await;
        drop(fresh_client);
    }
    assert!(client.is_connected());

    drop(client);
    server.stop().await;
}

/// Nothing listens: `Client::connect` fails with an `Io` error.
#[tokio::test]
async fn client_connect_to_a_closed_port_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    match within("connect", Client::connect(addr)).await {
        Err(CallError::Io { .. }) => {}
        other => panic!("expected an Io error, got {other:?}"),
    }
}
