//! [`Identity`]: a certificate chain and its private key, what a TLS server (or a client with
//! a certificate) presents.
//!
//! An identity comes from PEM files (a certificate chain and its key, e.g. from a CA), or is
//! generated: [`Identity::generate`] makes a self-signed one in memory, and
//! [`Identity::load_or_generate`] makes one the first time a directory is used and loads it
//! every time after, so a server keeps its [`Fingerprint`] (and its `pbrs://` URLs) across
//! restarts.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::fingerprint::Fingerprint;
use super::tls_error;
use crate::error::CallError;

/// The file [`Identity::load_or_generate`] keeps the certificate in.
pub const CERTIFICATE_FILE: &str = "tls-certificate.pem";
/// The file [`Identity::load_or_generate`] keeps the private key in (readable by its owner
/// only).
pub const KEY_FILE: &str = "tls-key.pem";

/// A certificate chain (leaf first) and the private key of its leaf.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    fingerprint: Fingerprint,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            fingerprint: self.fingerprint,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field("certificates", &self.chain.len())
            .finish()
    }
}

impl Identity {
    /// An identity from a certificate chain and a private key in PEM (the key as PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem(certificate_pem: &[u8], key_pem: &[u8]) -> Result<Identity, CallError> {
        let chain = CertificateDer::pem_slice_iter(certificate_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("the certificate PEM does not parse: {e}")))?;
        if chain.is_empty() {
            return Err(tls_error(
                "the certificate PEM holds no certificate (expected a \
                 -----BEGIN CERTIFICATE----- block)",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            tls_error(format!(
                "the private key PEM does not parse ({e}); expected a PKCS#8, PKCS#1 or SEC1 key"
            ))
        })?;
        let fingerprint = Fingerprint::of_certificate(&chain[0]);
        let identity = Identity {
            chain,
            key,
            fingerprint,
        };
        identity.check_key()?;
        Ok(identity)
    }

    /// An identity from a PEM certificate chain file and a PEM private key file.
    pub fn from_pem_files(
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, CallError> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                tls_error(format!("could not read the {what} {}: {e}", path.display()))
            })
        };
        let certificate = certificate.as_ref();
        let key = key.as_ref();
        Identity::from_pem(
            &read(certificate, "certificate")?,
            &read(key, "private key")?,
        )
        .map_err(|e| match e {
            CallError::Tls { message } => tls_error(format!(
                "{message} (files {} and {})",
                certificate.display(),
                key.display()
            )),
            other => other,
        })
    }

    /// A new self-signed identity (ECDSA P-256) for the host names `names` (e.g.
    /// `["localhost"]`; the names matter only to clients that check them, not to those that
    /// pin the fingerprint).
    pub fn generate(names: &[&str]) -> Result<Identity, CallError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| tls_error(format!("could not generate a certificate: {e}")))?;
        Identity::from_pem(
            certified.cert.pem().as_bytes(),
            certified.key_pair.serialize_pem().as_bytes(),
        )
    }

    /// The identity kept in `dir` ([`CERTIFICATE_FILE`] and [`KEY_FILE`]); the first time,
    /// a self-signed one for `names` is generated and written there (the directory is created;
    /// the key file is readable by its owner only). Fails, saying which, if only one of the two
    /// files exists or they do not parse: it never replaces an identity silently.
    pub fn load_or_generate(dir: impl AsRef<Path>, names: &[&str]) -> Result<Identity, CallError> {
        let dir = dir.as_ref();
        let certificate = dir.join(CERTIFICATE_FILE);
        let key = dir.join(KEY_FILE);
        match (certificate.exists(), key.exists()) {
            (true, true) => return Identity::from_pem_files(&certificate, &key),
            (false, false) => {}
            (true, false) | (false, true) => {
                let (present, missing) = if certificate.exists() {
                    (&certificate, &key)
                } else {
                    (&key, &certificate)
                };
                return Err(tls_error(format!(
                    "{} exists but {} does not: restore the missing file, or remove both to \
                     generate a new identity (with a new fingerprint)",
                    present.display(),
                    missing.display()
                )));
            }
        }
        let identity = Identity::generate(names)?;
        std::fs::create_dir_all(dir).map_err(|e| {
            tls_error(format!(
                "could not create the directory {}: {e}",
                dir.display()
            ))
        })?;
        write_private(&key, identity.key_pem().as_bytes())?;
        write_private(&certificate, identity.certificate_pem().as_bytes())?;
        Ok(identity)
    }

    /// The SHA-256 fingerprint of the leaf certificate: what clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate chain in PEM, e.g. to give clients that verify against it as a root.
    pub fn certificate_pem(&self) -> String {
        self.chain
            .iter()
            .map(|der| pem_block("CERTIFICATE", der))
            .collect()
    }

    /// The leaf certificate in DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    fn key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_block(label, self.key.secret_der())
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Checks that the key is one rustls can sign with and that it matches the certificate.
    fn check_key(&self) -> Result<(), CallError> {
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|e| tls_error(format!("the private key cannot be used: {e}")))?;
        let certified = rustls::sign::CertifiedKey::new(self.chain.clone(), signing);
        match certified.keys_match() {
            Ok(()) => Ok(()),
            // rustls cannot tell for some key types: let the handshake decide.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
            Err(e) => Err(tls_error(format!(
                "the private key does not belong to the certificate ({e})"
            ))),
        }
    }
}

/// One PEM block, with `\n` line endings.
fn pem_block(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der.to_vec()), config)
}

/// Writes `bytes` to a new file `path` readable by its owner only.
fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<(), CallError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(path).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    written.map_err(|e| tls_error(format!("could not write {}: {e}", path.display())))
}
