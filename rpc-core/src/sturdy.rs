//! Sturdy URLs (foolscap's FURLs): `pbrs://<fingerprint>@<host>:<port>/<secret>`.
//!
//! A URL carries where a server is, the [`Fingerprint`] of its TLS certificate (the pin), and
//! a secret of 256 random bits naming one object the server registered
//! ([`Server::register`](crate::Server::register)). Knowing the URL is the capability: a
//! peer without the secret reaches nothing through it. [`Client::connect_url`](crate::Client::connect_url)
//! connects over TLS, checks the pin, and looks the secret up.
//!
//! On the server, every connection exports a [`Registry`] at the well-known id
//! [`LOOKUP_OBJECT`](crate::protocol::LOOKUP_OBJECT): its one method takes a secret and
//! answers the registered object, or nothing. It compares the secret with every registered
//! one in constant time, so the time it takes tells nothing of how close a guess was.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq;

use crate::error::CallError;
use crate::object::ObjectRef;
use crate::remote;
use crate::tls::Fingerprint;

/// The URL scheme.
pub(crate) const SCHEME: &str = "pbrs://";

/// Random bytes in a secret.
const SECRET_BYTES: usize = 32;

/// A parsed `pbrs://<fingerprint>@<host>:<port>/<secret>` URL. Its `Display` is the URL;
/// its `Debug` leaves the secret out, so that logging it gives nothing away.
#[derive(Clone, PartialEq, Eq)]
pub struct SturdyUrl {
    fingerprint: Fingerprint,
    addr: String,
    secret: String,
}

impl SturdyUrl {
    /// The server's certificate fingerprint, the pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Where the server is, `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The same URL naming the server at `addr` (`host:port`): for a server listening on
    /// `0.0.0.0`, the address its clients reach it at.
    pub fn with_addr(mut self, addr: impl Into<String>) -> SturdyUrl {
        self.addr = addr.into();
        self
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Checks that `secret` can name an object: at least 32 hexadecimal digits (128 bits).
    pub fn check_secret(secret: &str) -> Result<(), String> {
        if secret.len() < 32 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the secret must be at least 32 hexadecimal digits (128 bits)".into());
        }
        Ok(())
    }

    /// `url` with its secret (and anything that may hold it) left out, for messages and
    /// logs: what [`SturdyUrl`]'s `Debug` shows, for text that may not even parse.
    pub fn redact(url: &str) -> String {
        redacted(url)
    }

    /// A new secret: 256 random bits from the operating system, in hexadecimal. Keep it to
    /// register an object under the same URL after a restart
    /// ([`Server::register_with_secret`](crate::Server::register_with_secret)).
    pub fn new_secret() -> Result<String, CallError> {
        let mut bytes = [0u8; SECRET_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(
            |_| CallError::Tls {
                message: "the system's random number generator failed".into(),
            },
        )?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Display for SturdyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}@{}/{}",
            self.fingerprint, self.addr, self.secret
        )
    }
}

impl fmt::Debug for SturdyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}@{}/<secret>", self.fingerprint, self.addr)
    }
}

/// The URL with its secret left out, for error messages: everything after the first `/` that
/// follows the address (the `@`, if any) is hidden, however many parts it has.
fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_at(if url.starts_with(SCHEME) {
        SCHEME.len()
    } else {
        0
    });
    let at = rest.find('@');
    let address_from = at.map_or(0, |at| at + 1);
    match (rest[address_from..].find('/'), at) {
        (Some(slash), _) => format!("{scheme}{}/<secret>", &rest[..address_from + slash]),
        // No slash: the secret may be glued to the address; show nothing after the @.
        (None, Some(at)) => format!("{scheme}{}@<rest hidden>", &rest[..at]),
        (None, None) => url.to_owned(),
    }
}

impl FromStr for SturdyUrl {
    type Err = CallError;

    fn from_str(url: &str) -> Result<Self, CallError> {
        let bad = |problem: String| CallError::InvalidUrl {
            url: redacted(url),
            problem,
        };
        let url = url.trim();
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| {
            bad(format!(
                "it must start with {SCHEME} (the form is \
                 pbrs://<fingerprint>@<host>:<port>/<secret>)"
            ))
        })?;
        let (fingerprint, rest) = rest.split_once('@').ok_or_else(|| {
            bad("the server's fingerprint and an @ must come before the address".into())
        })?;
        let fingerprint: Fingerprint = fingerprint
            .parse()
            .map_err(|e| bad(format!("the fingerprint is not valid: {e}")))?;
        let (addr, secret) = rest
            .split_once('/')
            .ok_or_else(|| bad("the secret (after a / following the address) is missing".into()))?;
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(bad(format!(
                    "the address {addr:?} is not host:port (e.g. example.org:8990 or \
                     [::1]:8990)"
                )));
            }
        }
        SturdyUrl::check_secret(secret)
            .map_err(|problem| bad(format!("{problem}; was the URL cut short?")))?;
        Ok(SturdyUrl {
            fingerprint,
            addr: addr.to_owned(),
            secret: secret.to_ascii_lowercase(),
        })
    }
}

/// What a server's connections export at [`LOOKUP_OBJECT`](crate::protocol::LOOKUP_OBJECT):
/// the objects registered under secrets.
#[remote]
pub(crate) trait Lookup {
    /// The object registered under `secret`, if any.
    async fn remote_lookup(&self, secret: String) -> Option<ObjectRef>;
}

/// The objects a server registered, each under its secret. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    entries: Arc<Mutex<Vec<(String, ObjectRef)>>>,
}

impl Registry {
    /// Registers `object` under `secret`, unless another object has it.
    pub(crate) fn register(&self, object: ObjectRef, secret: &str) -> Result<(), CallError> {
        let mut entries = crate::conn::lifecycle::lock(&*self.entries);
        if entries.iter().any(|(registered, _)| registered == secret) {
            return Err(CallError::InvalidUrl {
                url: "(the secret given to register_with_secret)".into(),
                problem: "another object is registered under this secret already".into(),
            });
        }
        entries.push((secret.to_owned(), object));
        Ok(())
    }

    /// Whether any object is registered.
    pub(crate) fn is_empty(&self) -> bool {
        crate::conn::lifecycle::lock(&*self.entries).is_empty()
    }

    /// The object registered under `secret`: every entry is compared, in constant time.
    fn find(&self, secret: &str) -> Option<ObjectRef> {
        let entries = crate::conn::lifecycle::lock(&*self.entries);
        let mut found = None;
        for (registered, object) in entries.iter() {
            if bool::from(registered.as_bytes().ct_eq(secret.as_bytes())) {
                found = Some(object.clone());
            }
        }
        found
    }
}

impl Lookup for Registry {
    async fn remote_lookup(&self, secret: String) -> Option<ObjectRef> {
        let found = self.find(&secret.to_ascii_lowercase());
        if found.is_none()
            && let Some(peer) = crate::Peer::current()
        {
            tracing::warn!(peer = %peer.addr(), "a sturdy URL lookup with an unknown secret");
        }
        found
    }
}

impl SturdyUrl {
    /// The URL of the object registered under `secret` on a server with `fingerprint` at
    /// `addr`.
    pub(crate) fn new(fingerprint: Fingerprint, addr: String, secret: String) -> SturdyUrl {
        SturdyUrl {
            fingerprint,
            addr,
            secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_hides_everything_after_the_address() {
        let secret = "5e".repeat(32);
        for (url, shown) in [
            (format!("pbrs://fp@h:1/{secret}"), "pbrs://fp@h:1/<secret>"),
            (format!("pbrs://fp@h:1/{secret}/"), "pbrs://fp@h:1/<secret>"),
            (
                format!("pbrs://fp@h:1/{secret}/x"),
                "pbrs://fp@h:1/<secret>",
            ),
            (format!("pbrs://fp@h:1{secret}"), "pbrs://fp@<rest hidden>"),
            (format!("h:1/{secret}"), "h:1/<secret>"),
            ("h:1".to_owned(), "h:1"),
        ] {
            assert_eq!(SturdyUrl::redact(&url), shown, "{url}");
        }
    }

    fn url() -> String {
        format!(
            "pbrs://{}@example.org:8990/{}",
            "ab".repeat(32),
            "0f".repeat(32)
        )
    }

    #[test]
    fn a_url_parses_and_prints_back() {
        let parsed: SturdyUrl = url().parse().unwrap();
        assert_eq!(parsed.addr(), "example.org:8990");
        assert_eq!(parsed.to_string(), url());
        assert!(!format!("{parsed:?}").contains(&"0f".repeat(32)));
        let v6: SturdyUrl = url().replace("example.org", "[::1]").parse().unwrap();
        assert_eq!(v6.addr(), "[::1]:8990");
    }

    #[test]
    fn errors_say_what_is_wrong_and_hide_the_secret() {
        let cases = [
            (
                url().replace("pbrs://", "http://"),
                "must start with pbrs://",
            ),
            (url().replace('@', "#"), "an @"),
            (url().replacen("ab", "zz", 1), "fingerprint is not valid"),
            (url().replace(":8990", ""), "not host:port"),
            (url().replace(":8990", ":99999"), "not host:port"),
            (
                url().replace("/0f", "0f"),
                "secret (after a / following the address) is missing",
            ),
            (
                url()[..url().len() - 40].to_owned(),
                "at least 32 hexadecimal",
            ),
        ];
        for (text, expected) in cases {
            let e = text.parse::<SturdyUrl>().unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains(&"0f".repeat(20)), "the secret leaked: {e}");
        }
    }

    #[test]
    fn the_registry_finds_exactly_the_secret() {
        let registry = Registry::default();
        assert!(registry.is_empty());
        let object = crate::RemoteRef::object(&LookupRef::new(Registry::default())).clone();
        let secret = SturdyUrl::new_secret().unwrap();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, SturdyUrl::new_secret().unwrap());
        registry.register(object.clone(), &secret).unwrap();
        assert!(
            registry.register(object, &secret).is_err(),
            "one object per secret"
        );
        assert!(registry.find(&secret).is_some());
        let mut wrong = secret.clone().into_bytes();
        wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
        assert!(
            registry
                .find(std::str::from_utf8(&wrong).unwrap())
                .is_none()
        );
        assert!(registry.find(&secret[..63]).is_none());
        assert!(registry.find("").is_none());
    }
}
