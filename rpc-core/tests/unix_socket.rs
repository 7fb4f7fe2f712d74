//! The same server and client over a Unix socket: any `AsyncRead + AsyncWrite` transport
//! works like TCP.

use std::time::Duration;

use rpc_core::{CallError, Client, Config, RemoteErrorKind, remote, serve_connection};
use tokio::net::UnixStream;

/// A trivial remote object.
#[remote]
pub trait Counter {
    /// The length of `text`.
    async fn remote_len(&self, text: String) -> usize;
}

struct Len;

impl Counter for Len {
    async fn remote_len(&self, text: String) -> usize {
        text.len()
    }
}

#[tokio::test]
async fn calls_over_a_unix_socket_pair() {
    let (server_end, client_end) = UnixStream::pair().unwrap();
    let serving = tokio::spawn(serve_connection(
        server_end,
        CounterRef::new(Len),
        Config::default(),
        "unix socket",
    ));
    let client = Client::over(client_end, Config::default()).await.unwrap();
    let counter: CounterRef = client.root().await.unwrap();
    let lens = futures::future::try_join_all((0..100).map(|n| counter.len("x".repeat(n))))
        .await
        .unwrap();
    assert_eq!(lens, (0..100).collect::<Vec<_>>());
    let err = client
        .call_remote::<_, ()>("length", ("x",))
        .await
        .unwrap_err();
    assert_eq!(err.remote_kind(), Some(RemoteErrorKind::NoSuchMethod));

    // Closing the client ends the server side of the connection too.
    client.close();
    let served = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server side did not notice the close")
        .unwrap();
    assert!(served.is_ok());
    assert!(matches!(
        counter.len("late".into()).await,
        Err(CallError::Disconnected { .. })
    ));
}
