//! TLS for pbrs connections (rustls with the `ring` provider, through tokio-rustls).
//!
//! - A server presents an [`Identity`]: a certificate and key from PEM files, or a
//!   self-signed one generated once and kept in a directory
//!   ([`Identity::load_or_generate`]). Its SHA-256 [`Fingerprint`] names it.
//! - A client ([`ClientTls`]) checks the server either against a pinned fingerprint
//!   ([`ClientTls::pinned`], what `pbrs://` URLs carry) or against CA roots it is given
//!   ([`ClientTls::with_ca_roots`]).
//! - A server may require client certificates ([`ServerTls::require_client_certificates`],
//!   any certificate, known by its fingerprint; or
//!   [`ServerTls::require_client_certificates_from`], signed by given CAs, known by subject
//!   too). Handlers see the client's [`PeerCertificate`] through
//!   [`Peer::certificate`](crate::Peer::certificate).
//!
//! A server with TLS looks at the first byte a client sends: a plaintext pbrs client is told,
//! in a pbrs frame it can read, that this server requires TLS. A plaintext server that gets a
//! TLS greeting logs it and answers with its pbrs hello, which the TLS client recognises and
//! reports. Failures of certificates say which check failed, on the side that can tell.

pub(crate) mod fingerprint;
pub(crate) mod identity;
pub(crate) mod verify;

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

pub use fingerprint::Fingerprint;
pub use identity::{CERTIFICATE_FILE, Identity, KEY_FILE};
use verify::{AnyClientCertificate, PinnedServer, Side, describe};

use crate::error::CallError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn tls_error(message: impl Into<String>) -> CallError {
    CallError::Tls {
        message: message.into(),
    }
}

/// CA roots from PEM (one or more `CERTIFICATE` blocks).
fn roots_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CallError> {
    let roots = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(format!("the CA roots PEM does not parse: {e}")))?;
    if roots.is_empty() {
        return Err(tls_error("the CA roots PEM holds no certificate"));
    }
    Ok(roots)
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, CallError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(|e| tls_error(format!("a CA root is not usable: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// Who a client is, as its TLS certificate says (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The SHA-256 fingerprint of its certificate.
    pub fingerprint: Fingerprint,
    /// Its subject (e.g. `CN=worker-1`) when a CA the server trusts vouched for it; `None`
    /// when the server accepts any certificate and knows the client by fingerprint only.
    pub subject: Option<String>,
}

/// Which client certificates a server asks for.
#[derive(Clone, Debug)]
enum ClientCertificates {
    NotAsked,
    Any,
    SignedBy(Vec<CertificateDer<'static>>),
}

/// The TLS side of a [`Server`](crate::Server): its identity and what it asks of clients.
/// Give it to [`Server::with_tls`](crate::Server::with_tls).
#[derive(Clone, Debug)]
pub struct ServerTls {
    identity: Identity,
    clients: ClientCertificates,
}

impl ServerTls {
    /// Serves with `identity`; clients need no certificate.
    pub fn new(identity: Identity) -> ServerTls {
        ServerTls {
            identity,
            clients: ClientCertificates::NotAsked,
        }
    }

    /// Requires every client to present a certificate, any certificate: the client proves it
    /// holds the key and is known by the certificate's [`Fingerprint`] (mutual TLS without a
    /// CA, as with pinned servers).
    pub fn require_client_certificates(mut self) -> ServerTls {
        self.clients = ClientCertificates::Any;
        self
    }

    /// Requires every client to present a certificate signed by one of the CAs in
    /// `ca_roots_pem`; handlers then see its subject too.
    pub fn require_client_certificates_from(
        mut self,
        ca_roots_pem: &[u8],
    ) -> Result<ServerTls, CallError> {
        self.clients = ClientCertificates::SignedBy(roots_from_pem(ca_roots_pem)?);
        Ok(self)
    }

    /// The server's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The rustls acceptor for this configuration.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, CallError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("no usable TLS version: {e}")))?;
        let (builder, ca_verified) = match &self.clients {
            ClientCertificates::NotAsked => (builder.with_no_client_auth(), false),
            ClientCertificates::Any => {
                let verifier = AnyClientCertificate {
                    algorithms: provider.signature_verification_algorithms,
                };
                (builder.with_client_cert_verifier(Arc::new(verifier)), false)
            }
            ClientCertificates::SignedBy(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    root_store(roots)?,
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| tls_error(format!("cannot check client certificates: {e}")))?;
                (builder.with_client_cert_verifier(verifier), true)
            }
        };
        let config = builder
            .with_single_cert(self.identity.chain(), self.identity.key())
            .map_err(|e| tls_error(format!("the server identity is not usable: {e}")))?;
        Ok(TlsAcceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            ca_verified,
        })
    }
}

/// A ready TLS acceptor, built once per server.
#[derive(Clone)]
pub(crate) struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_verified: bool,
}

impl TlsAcceptor {
    /// Runs the server side of the TLS handshake; the error says what went wrong.
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
    ) -> Result<
        (
            tokio_rustls::server::TlsStream<TcpStream>,
            Option<PeerCertificate>,
        ),
        String,
    > {
        let stream = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|e| describe(&e, Side::Server))?;
        let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| {
            let leaf = chain.first()?;
            Some(PeerCertificate {
                fingerprint: Fingerprint::of_certificate(leaf),
                subject: self.ca_verified.then(|| subject_of(leaf)).flatten(),
            })
        });
        Ok((stream, certificate))
    }
}

/// The subject of a certificate, as text (`CN=..., O=...`).
fn subject_of(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.subject().to_string())
}

/// How a client checks the server it connects to.
#[derive(Clone, Debug)]
enum Trust {
    Pinned(Fingerprint),
    Roots(Vec<CertificateDer<'static>>),
}

/// The TLS side of a client: how it checks the server, and the certificate it presents if
/// the server asks for one. Give it to [`Client::connect_tls`](crate::Client::connect_tls).
#[derive(Clone, Debug)]
pub struct ClientTls {
    trust: Trust,
    identity: Option<Identity>,
    server_name: Option<String>,
}

impl ClientTls {
    /// Accepts only the server whose certificate has fingerprint `fingerprint` (whatever
    /// signed it and whatever names it carries).
    pub fn pinned(fingerprint: Fingerprint) -> ClientTls {
        ClientTls {
            trust: Trust::Pinned(fingerprint),
            identity: None,
            server_name: None,
        }
    }

    /// Accepts servers whose certificate chains to one of the CA certificates in
    /// `ca_roots_pem` and is valid for the host name connected to (see
    /// [`server_name`](ClientTls::server_name)).
    pub fn with_ca_roots(ca_roots_pem: &[u8]) -> Result<ClientTls, CallError> {
        Ok(ClientTls {
            trust: Trust::Roots(roots_from_pem(ca_roots_pem)?),
            identity: None,
            server_name: None,
        })
    }

    /// Like [`with_ca_roots`](ClientTls::with_ca_roots), reading the PEM from a file.
    pub fn with_ca_roots_file(path: impl AsRef<Path>) -> Result<ClientTls, CallError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            tls_error(format!(
                "could not read the CA roots {}: {e}",
                path.display()
            ))
        })?;
        ClientTls::with_ca_roots(&pem)
    }

    /// Presents `identity` to servers that ask for a client certificate (mutual TLS).
    pub fn with_identity(mut self, identity: Identity) -> ClientTls {
        self.identity = Some(identity);
        self
    }

    /// The same settings, accepting only the server whose certificate has `fingerprint`.
    pub(crate) fn pin(mut self, fingerprint: Fingerprint) -> ClientTls {
        self.trust = Trust::Pinned(fingerprint);
        self
    }

    /// The name to check the server's certificate against (and to send in SNI), instead of
    /// the host part of the address connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> ClientTls {
        self.server_name = Some(name.into());
        self
    }

    /// Runs the client side of the TLS handshake over `stream`, to the host `host` (the host
    /// part of the address connected to).
    pub(crate) async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, CallError> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(format!("no usable TLS version: {e}")))?;
        let builder = match &self.trust {
            Trust::Pinned(fingerprint) => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedServer::new(
                        *fingerprint,
                        &provider,
                    )))
            }
            Trust::Roots(roots) => builder.with_root_certificates(root_store(roots)?),
        };
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain(), identity.key())
                .map_err(|e| tls_error(format!("the client identity is not usable: {e}")))?,
        };
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = match (ServerName::try_from(name.to_owned()), &self.trust) {
            (Ok(name), _) => name,
            // A pinned server is checked by fingerprint only: any syntactically valid name
            // will do.
            (Err(_), Trust::Pinned(_)) => {
                ServerName::try_from("pbrs.invalid").expect("a valid name")
            }
            (Err(e), Trust::Roots(_)) => {
                return Err(tls_error(format!(
                    "{name:?} is not a host name or IP address to check the server's \
                     certificate against ({e}); set one with ClientTls::server_name"
                )));
            }
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, stream)
            .await
            .map_err(|e| tls_error(describe(&e, Side::Client)))
    }
}

/// The host part of `host:port` (without the brackets of an IPv6 address).
pub(crate) fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The first byte of a TLS connection (a handshake record); a pbrs hello starts with 0.
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Whether a frame length read from a connection is in fact the start of a TLS record
/// (`16 03 0x ..`): a TLS client talking to a plaintext server.
pub(crate) fn looks_like_tls(announced_length: usize) -> bool {
    announced_length >> 16 == 0x1603
}
