//! Certificate checks rustls does not provide: a server certificate pinned by its
//! [`Fingerprint`] ([`PinnedServer`]), and client certificates named by their fingerprint
//! rather than vouched for by a CA ([`AnyClientCertificate`]).
//!
//! Both check the handshake signatures with the provider's algorithms, exactly as rustls's
//! own verifiers do: the peer must hold the private key of the certificate it shows, so a
//! certificate copied from elsewhere gets nobody in. What they skip is the CA chain and, for a
//! pin, the names and the validity dates: the pin *is* the identity (as in foolscap), and a
//! self-signed identity kept in a directory does not expire.
//!
//! [`describe`] turns what rustls reports into a sentence for the user.

use std::io;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, DistinguishedName, Error,
    OtherError, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::fingerprint::Fingerprint;

/// The error a [`PinnedServer`] returns for a certificate that is not the pinned one.
#[derive(Debug)]
pub(crate) struct PinMismatch {
    pub(crate) expected: Fingerprint,
    pub(crate) found: Fingerprint,
}

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server's certificate is not the pinned one: its fingerprint is {}, the pin \
             (from the URL or the configuration) says {}; this is another server, or the \
             server's identity changed",
            self.found, self.expected
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly the server certificate whose fingerprint is `expected`.
#[derive(Debug)]
pub(crate) struct PinnedServer {
    pub(crate) expected: Fingerprint,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedServer {
    pub(crate) fn new(expected: Fingerprint, provider: &CryptoProvider) -> Self {
        PinnedServer {
            expected,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let found = Fingerprint::of_certificate(end_entity);
        if found == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch {
                    expected: self.expected,
                    found,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Requires a client certificate, any certificate: the client is then known by its
/// fingerprint (it proved it holds the key), not by a CA's word.
#[derive(Debug)]
pub(crate) struct AnyClientCertificate {
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls error inside an I/O error from a TLS stream, if there is one.
pub(crate) fn rustls_error(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

/// What went wrong in a TLS handshake, in the user's words. `us` is "client" or "server".
pub(crate) fn describe(e: &io::Error, us: Side) -> String {
    let Some(error) = rustls_error(e) else {
        return match (e.kind(), us) {
            (io::ErrorKind::UnexpectedEof, Side::Client) => {
                "the server closed the connection during the TLS handshake: it may not serve \
                 TLS (a plaintext pbrs server closes on a TLS greeting), or it refused us"
                    .to_owned()
            }
            (io::ErrorKind::UnexpectedEof, Side::Server) => {
                "the client closed the connection during the TLS handshake (did it refuse our \
                 certificate?)"
                    .to_owned()
            }
            _ => format!("the TLS handshake failed: {e}"),
        };
    };
    match error {
        Error::InvalidCertificate(CertificateError::Other(other)) => {
            match other.0.downcast_ref::<PinMismatch>() {
                Some(mismatch) => mismatch.to_string(),
                None => format!("the peer's certificate was refused: {other}"),
            }
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => format!(
            "the {}'s certificate has expired: it must be renewed",
            us.other()
        ),
        Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => format!(
            "the {}'s certificate is not valid yet (check the clocks)",
            us.other()
        ),
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the {}'s certificate is not signed by a CA we trust (unknown CA): give the right \
             CA roots, or pin its fingerprint instead",
            us.other()
        ),
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the server's certificate is not valid for the name we connected to (set the \
              server name to one of the certificate's names, or pin its fingerprint)"
            .to_owned(),
        Error::InvalidCertificate(other) => {
            format!("the {}'s certificate was refused: {other}", us.other())
        }
        Error::NoCertificatesPresented => {
            "the client sent no certificate, and this server requires one (mutual TLS)".to_owned()
        }
        Error::AlertReceived(alert) => describe_alert(*alert, us),
        Error::InvalidMessage(_) if us == Side::Client => {
            "the server did not answer with TLS: it serves plaintext pbrs (connect without TLS, \
             or have it serve TLS)"
                .to_owned()
        }
        Error::InvalidMessage(_) => {
            "the client did not speak TLS, and this server requires TLS".to_owned()
        }
        other => format!("the TLS handshake failed: {other}"),
    }
}

fn describe_alert(alert: AlertDescription, us: Side) -> String {
    let them = us.other();
    match alert {
        AlertDescription::CertificateRequired => {
            "the server requires a client certificate (mutual TLS), and we sent none".to_owned()
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::CertificateExpired
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateRevoked
        | AlertDescription::DecryptError => {
            format!("the {them} refused our certificate (TLS alert: {alert:?})")
        }
        other => format!("the {them} ended the TLS handshake (TLS alert: {other:?})"),
    }
}

/// Which end of a TLS connection this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn other(self) -> &'static str {
        match self {
            Side::Client => "server",
            Side::Server => "client",
        }
    }
}
