//! TLS over loopback TCP: every way a connection is refused fails at connect, saying which
//! check failed, and the server goes on serving a good client afterwards; CA-verified servers;
//! client certificates seen by handlers; identities kept in a directory.

mod common;

use common::tls::{
    TempDir, TestCa, assert_mentions, connect, plaintext_server, secure_server, self_signed,
    tls_message, trusting, whoami,
};
use common::warnings::{capture_warnings, warning_containing};
use rpc_core::tls::{CERTIFICATE_FILE, ClientTls, Identity, KEY_FILE, ServerTls};
use rpc_core::{CallError, Client};

/// A client pinning another fingerprint is refused, and the message gives both fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_the_pinned_one_is_refused() {
    let identity = self_signed();
    let pin = identity.fingerprint();
    let server = secure_server(ServerTls::new(identity)).await;
    let other = self_signed().fingerprint();

    let message = tls_message(connect(server.addr, &ClientTls::pinned(other)).await);
    assert_mentions(
        &message,
        &["not the pinned one", &pin.to_string(), &other.to_string()],
    );

    let seen = whoami(server.addr, &ClientTls::pinned(pin)).await;
    assert_eq!(seen.fingerprint, None, "no client certificate was sent");
    server.stop().await;
}

/// A server whose certificate another CA signed is refused as signed by an unknown CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signed_by_another_ca_is_refused() {
    let (ours, theirs) = (TestCa::new("CA A"), TestCa::new("CA B"));
    let server = secure_server(ServerTls::new(ours.issue("server"))).await;

    let message = tls_message(connect(server.addr, &trusting(&theirs)).await);
    assert_mentions(&message, &["unknown CA"]);

    whoami(server.addr, &trusting(&ours)).await;
    server.stop().await;
}

/// An expired certificate is refused by a client that verifies it against its CA; a client
/// that pins it (pins ignore dates) still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let ca = TestCa::new("CA");
    let identity = ca.issue_expired("server");
    let pin = identity.fingerprint();
    let server = secure_server(ServerTls::new(identity)).await;

    let message = tls_message(connect(server.addr, &trusting(&ca)).await);
    assert_mentions(&message, &["expired"]);

    whoami(server.addr, &ClientTls::pinned(pin)).await;
    server.stop().await;
}

/// A CA-verified server is accepted under one of its names, and refused under another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_verified_server_is_checked_by_name() {
    let ca = TestCa::new("CA");
    let server = secure_server(ServerTls::new(ca.issue("server"))).await;

    // Connected to 127.0.0.1, the certificate (for localhost) does not fit.
    let by_address = ClientTls::with_ca_roots(ca.pem().as_bytes()).unwrap();
    let message = tls_message(connect(server.addr, &by_address).await);
    assert_mentions(&message, &["not valid for the name"]);
    let elsewhere = by_address.clone().server_name("example.org");
    let message = tls_message(connect(server.addr, &elsewhere).await);
    assert_mentions(&message, &["not valid for the name"]);

    let seen = whoami(server.addr, &by_address.server_name("localhost")).await;
    assert_eq!(seen.fingerprint, None);
    server.stop().await;
}

/// A plaintext client is told, in words, that the server requires TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_told_the_server_requires_tls() {
    let identity = self_signed();
    let pin = identity.fingerprint();
    let server = secure_server(ServerTls::new(identity)).await;

    let refused = within_connect(Client::connect(server.addr)).await;
    match refused {
        Err(CallError::Protocol { message }) => {
            assert_mentions(&message, &["requires TLS", "connect_tls"])
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }

    whoami(server.addr, &ClientTls::pinned(pin)).await;
    server.stop().await;
}

/// A TLS client is told the server does not serve TLS; the server logs it and serves the
/// plaintext clients that follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_is_told_the_server_serves_plaintext() {
    capture_warnings();
    let server = plaintext_server().await;

    let message =
        tls_message(connect(server.addr, &ClientTls::pinned(self_signed().fingerprint())).await);
    assert_mentions(&message, &["did not answer with TLS", "plaintext"]);
    let logged = warning_containing("the peer speaks TLS").await;
    assert_mentions(&logged, &["handshake failed"]);

    let client = within_connect(Client::connect(server.addr)).await.unwrap();
    let root: common::tls::SecureRef = client.root().await.unwrap();
    let seen = common::within("whoami", root.whoami()).await.unwrap();
    assert!(!seen.encrypted, "a plaintext connection called encrypted");
    assert!(!client.peer().is_encrypted());
    client.close();
    server.stop().await;
}

/// A server that requires client certificates (any, known by fingerprint) refuses a client
/// without one, saying so, and shows a handler the fingerprint of a client with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_known_by_fingerprint() {
    let identity = self_signed();
    let pin = identity.fingerprint();
    let server = secure_server(ServerTls::new(identity).require_client_certificates()).await;

    let message = tls_message(connect(server.addr, &ClientTls::pinned(pin)).await);
    assert_mentions(&message, &["client certificate"]);

    let client_identity = self_signed();
    let expected = client_identity.fingerprint().to_string();
    let seen = whoami(
        server.addr,
        &ClientTls::pinned(pin).with_identity(client_identity),
    )
    .await;
    assert_eq!(seen.fingerprint.as_deref(), Some(expected.as_str()));
    assert_eq!(seen.subject, None, "no CA vouched for the subject");
    server.stop().await;
}

/// A server that requires client certificates from its CA shows handlers their subject, and
/// refuses a certificate from another CA and a client without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_signed_by_a_ca() {
    let (ca, stranger) = (TestCa::new("CA"), TestCa::new("Stranger CA"));
    let tls = ServerTls::new(ca.issue("server"))
        .require_client_certificates_from(ca.pem().as_bytes())
        .unwrap();
    let server = secure_server(tls).await;

    let intruder = trusting(&ca).with_identity(stranger.issue("intruder"));
    let message = tls_message(connect(server.addr, &intruder).await);
    assert_mentions(&message, &["refused our certificate"]);
    let message = tls_message(connect(server.addr, &trusting(&ca)).await);
    assert_mentions(&message, &["client certificate"]);

    let worker = ca.issue("worker-1");
    let expected = worker.fingerprint().to_string();
    let seen = whoami(server.addr, &trusting(&ca).with_identity(worker)).await;
    assert_eq!(seen.fingerprint.as_deref(), Some(expected.as_str()));
    let subject = seen.subject.expect("a CA-verified subject");
    assert_mentions(&subject, &["CN=worker-1"]);
    server.stop().await;
}

/// Awaits a plaintext connect within the test's patience.
async fn within_connect(
    connecting: impl Future<Output = Result<Client, CallError>>,
) -> Result<Client, CallError> {
    common::within("connect", connecting).await
}

/// `load_or_generate` generates an identity once (the key readable by its owner only), loads
/// the same one after, and refuses a directory holding only one of its two files.
#[test]
fn an_identity_kept_in_a_directory() {
    let dir = TempDir::new("identity");
    let first = Identity::load_or_generate(dir.path(), &["localhost"]).unwrap();
    let again = Identity::load_or_generate(dir.path(), &["localhost"]).unwrap();
    assert_eq!(again.fingerprint(), first.fingerprint());
    assert_eq!(again.certificate_pem(), first.certificate_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the key file is readable by others: {mode:o}"
        );
    }

    for (removed, kept) in [(KEY_FILE, CERTIFICATE_FILE), (CERTIFICATE_FILE, KEY_FILE)] {
        let copy = TempDir::new("identity-half");
        std::fs::copy(dir.path().join(kept), copy.path().join(kept)).unwrap();
        let message = tls_message(Identity::load_or_generate(copy.path(), &["localhost"]));
        assert_mentions(&message, &[kept, removed, "does not"]);
        assert!(!copy.path().join(removed).exists(), "{removed} was written");
    }
}

/// A key that is not the certificate's, or PEM that holds no certificate, is refused.
#[test]
fn identities_from_pem_are_checked() {
    let ca = TestCa::new("CA");
    let (cert_a, key_a) = ca.issue_pem("a");
    let (_, key_b) = ca.issue_pem("b");
    let a = Identity::from_pem(cert_a.as_bytes(), key_a.as_bytes()).unwrap();
    assert_eq!(a.certificate_pem().trim(), cert_a.trim());

    let message = tls_message(Identity::from_pem(cert_a.as_bytes(), key_b.as_bytes()));
    assert_mentions(&message, &["does not belong to the certificate"]);
    let message = tls_message(Identity::from_pem(b"not a certificate", key_a.as_bytes()));
    assert_mentions(&message, &["no certificate"]);
}
