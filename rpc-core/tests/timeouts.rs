//! What a caller sees when something does not happen in time: every timeout says which it
//! was ([`TimeoutKind`]) in words, without a `match` on strings.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::tls::self_signed;
use common::within;
use rpc_core::tls::ClientTls;
use rpc_core::{Client, Config, TimeoutKind};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A listener that accepts one connection and never says a word; its task ends when the
/// client leaves.
async fn silent_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    (addr, silent)
}

/// A server that accepts but never greets: the pbrs handshake times out, and over TLS the
/// TLS handshake does; each error says which, and what to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_handshake_timeout_of_the_right_kind() {
    let config = Config::default().handshake_timeout(Duration::from_millis(200));

    let (addr, silent) = silent_server().await;
    let e = within("connect", Client::connect_with(addr, config.clone()))
        .await
        .unwrap_err();
    assert!(e.is_timeout() && !e.is_disconnected(), "{e}");
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::Handshake), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("the pbrs handshake timed out after 200ms: "),
        "{text}"
    );
    assert!(text.contains("Config::handshake_timeout"), "{text}");
    within("the silent server to see the client leave", silent)
        .await
        .unwrap();

    let (addr, silent) = silent_server().await;
    let tls = ClientTls::pinned(self_signed().fingerprint());
    let e = within(
        "connect over TLS",
        Client::connect_tls_with(&addr.to_string(), &tls, config),
    )
    .await
    .unwrap_err();
    assert_eq!(e.timeout_kind(), Some(TimeoutKind::TlsHandshake), "{e}");
    assert!(
        e.to_string()
            .starts_with("the TLS handshake timed out after 200ms: "),
        "{e}"
    );
    within("the silent server to see the client leave", silent)
        .await
        .unwrap();
}
