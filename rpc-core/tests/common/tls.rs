//! TLS test helpers: a test CA that issues identities (valid or expired), a root object that
//! reports what its handlers see of their caller, TLS servers that are always stopped, and a
//! raw peer over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rpc_core::tls::{ClientTls, Identity, ServerTls};
use rpc_core::{CallError, Client, Config, Peer, Server, SturdyUrl, remote};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Calc, Item, ListenerRef, RawPeer, TestServer, ThingRef, within};

// ---------------------------------------------------------------------------------------------
// Certificates.
// ---------------------------------------------------------------------------------------------

/// A certificate authority made for one test.
pub struct TestCa {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA whose certificate has common name `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let certificate = params.self_signed(&key).expect("a CA certificate");
        TestCa { certificate, key }
    }

    /// The CA's certificate in PEM: the root to trust.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// An identity for `localhost` with common name `name`, valid now, for servers and clients.
    pub fn issue(&self, name: &str) -> Identity {
        identity(self.issue_pem(name))
    }

    /// Like [`issue`](TestCa::issue), but valid only in the year 2000.
    pub fn issue_expired(&self, name: &str) -> Identity {
        identity(self.issue_with(name, |params| {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }))
    }

    fn issue_with(
        &self,
        name: &str,
        adjust: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        adjust(&mut params);
        let key = rcgen::KeyPair::generate().expect("a leaf key");
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("a leaf certificate");
        (certificate.pem(), key.serialize_pem())
    }

    /// Like [`issue`](TestCa::issue), as PEM: the certificate and the key.
    pub fn issue_pem(&self, name: &str) -> (String, String) {
        self.issue_with(name, |_| {})
    }
}

/// The identity of a certificate and key in PEM.
fn identity((certificate, key): (String, String)) -> Identity {
    Identity::from_pem(certificate.as_bytes(), key.as_bytes()).expect("the issued identity")
}

/// A new self-signed identity for `localhost`.
pub fn self_signed() -> Identity {
    Identity::generate(&["localhost"]).expect("generate an identity")
}

/// A client that checks the server against `ca`, by the name `localhost`.
pub fn trusting(ca: &TestCa) -> ClientTls {
    ClientTls::with_ca_roots(ca.pem().as_bytes())
        .expect("CA roots")
        .server_name("localhost")
}

// ---------------------------------------------------------------------------------------------
// The root object of TLS servers.
// ---------------------------------------------------------------------------------------------

/// What a handler saw of its caller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// The fingerprint of the caller's certificate.
    pub fingerprint: Option<String>,
    /// The subject of the caller's certificate, when a CA vouched for it.
    pub subject: Option<String>,
    /// Whether the connection is encrypted.
    pub encrypted: bool,
}

/// The root of the TLS test servers.
#[remote]
pub trait Secure {
    /// What the handler sees of its caller through `Peer::current()`.
    async fn remote_whoami(&self) -> Seen;
    /// Calls `listener.notify(n)` back; returns its answer.
    async fn remote_call_back(&self, listener: ListenerRef, n: u32) -> Result<u32, String>;
    /// A new object with serial `serial`, exported to the caller.
    async fn remote_make(&self, serial: u64) -> ThingRef;
}

/// The one implementation of [`Secure`].
pub struct SecureObject;

impl Secure for SecureObject {
    async fn remote_whoami(&self) -> Seen {
        let peer = Peer::current().expect("a handler runs for a peer");
        let certificate = peer.certificate();
        Seen {
            fingerprint: certificate.map(|c| c.fingerprint.to_string()),
            subject: certificate.and_then(|c| c.subject.clone()),
            encrypted: peer.is_encrypted(),
        }
    }

    async fn remote_call_back(&self, listener: ListenerRef, n: u32) -> Result<u32, String> {
        listener.notify(n).await.map_err(|e| e.to_string())
    }

    async fn remote_make(&self, serial: u64) -> ThingRef {
        let (dropped, _) = tokio::sync::mpsc::unbounded_channel();
        ThingRef::new(Item { serial, dropped })
    }
}

/// A server of a [`SecureObject`] with `tls`, running until stopped.
pub async fn secure_server(tls: ServerTls) -> TestServer {
    TestServer::serve(bind_secure().await.with_tls(tls).expect("with_tls"))
}

/// A TLS server with `identity` and `config` whose root is calculator 0, with calculators
/// `1..=registered` registered; their URLs.
pub async fn calc_server(
    identity: Identity,
    config: Config,
    registered: u32,
) -> (TestServer, Vec<SturdyUrl>) {
    let (root, _) = Calc::root(0);
    let server = Server::bind("127.0.0.1:0", root)
        .await
        .expect("bind 127.0.0.1:0")
        .with_config(config)
        .with_tls(ServerTls::new(identity))
        .expect("with_tls");
    let urls = (1..=registered)
        .map(|id| server.register(Calc::root(id).0).expect("register"))
        .collect();
    (TestServer::serve(server), urls)
}

/// A plaintext server of a [`SecureObject`].
pub async fn plaintext_server() -> TestServer {
    TestServer::serve(bind_secure().await)
}

/// A [`SecureObject`] server bound to `127.0.0.1:0`, not yet running.
pub async fn bind_secure() -> Server {
    Server::bind("127.0.0.1:0", SecureRef::new(SecureObject))
        .await
        .expect("bind 127.0.0.1:0")
}

// ---------------------------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------------------------

/// Connects over TLS to `addr` with `tls`.
pub async fn connect(addr: SocketAddr, tls: &ClientTls) -> Result<Client, CallError> {
    within("a TLS connect", Client::connect_tls(&addr.to_string(), tls)).await
}

/// Connects with `tls` and asks the root what it sees of us; fails the test if that fails.
pub async fn whoami(addr: SocketAddr, tls: &ClientTls) -> Seen {
    let client = connect(addr, tls).await.expect("a good client connects");
    let root: SecureRef = client.root().await.expect("root");
    let seen = within("whoami", root.whoami()).await.expect("whoami");
    assert!(seen.encrypted, "the server sees a plaintext connection");
    assert!(client.peer().is_encrypted());
    client.close();
    seen
}

/// The message of a [`CallError::Tls`]; fails the test on anything else.
#[track_caller]
pub fn tls_message<T: std::fmt::Debug>(result: Result<T, CallError>) -> String {
    match result {
        Err(CallError::Tls { message }) => message,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// Asserts that `message` contains every one of `needles`.
#[track_caller]
pub fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} is not in: {message}");
    }
}

/// A raw peer over TLS to `addr`, checking the server against `ca` by the name `localhost`,
/// hellos exchanged.
pub async fn raw_tls(addr: SocketAddr, ca: &TestCa) -> RawPeer<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca.pem().as_bytes()) {
        roots.add(certificate.expect("CA PEM")).expect("a CA root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = within("a raw connect", TcpStream::connect(addr))
        .await
        .expect("raw connect");
    let name = ServerName::try_from("localhost").expect("a name");
    let stream = within("a raw TLS handshake", connector.connect(name, tcp))
        .await
        .expect("a raw TLS handshake");
    let mut peer = RawPeer { stream };
    peer.exchange_hellos().await;
    peer
}

// ---------------------------------------------------------------------------------------------
// A directory for one test.
// ---------------------------------------------------------------------------------------------

/// A new empty directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let unique: u64 = rand::random();
        let path =
            std::env::temp_dir().join(format!("pbrs-{label}-{}-{unique:016x}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
