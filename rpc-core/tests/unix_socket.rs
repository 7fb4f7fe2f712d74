//! The same server and client over a Unix socket: any `AsyncRead + AsyncWrite` transport
//! works like TCP, whole or split into its two halves.

use std::time::Duration;

use rpc_core::{
    CallError, Client, Config, RemoteErrorKind, remote, serve_connection, serve_connection_halves,
};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

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
    calls_then_close(client, serving).await;
}

#[tokio::test]
async fn calls_over_the_halves_of_a_unix_socket_pair() {
    let (server_end, client_end) = UnixStream::pair().unwrap();
    let (server_reader, server_writer) = server_end.into_split();
    let serving = tokio::spawn(async move {
        serve_connection_halves(
            server_reader,
            server_writer,
            CounterRef::new(Len),
            Config::default(),
            "unix socket halves",
        )
        .await
    });
    let (client_reader, client_writer) = client_end.into_split();
    let client = Client::over_halves(client_reader, client_writer, Config::default())
        .await
        .unwrap();
    calls_then_close(client, serving).await;
}

/// Calls the counter behind `client` (served by `serving`), many at once, and a method it
/// lacks; then closes the client and checks that the server side ends too.
async fn calls_then_close(client: Client, serving: JoinHandle<Result<(), CallError>>) {
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
