//! Who may use a broker, and how they get in.
//!
//! - [`Users`]: user names with a [`Role`] and the argon2 hash of their password.
//! - [`BrokerRealm`]: the login realm of a broker. A user who logs in gets, as their avatar,
//!   a [`BrokerRef`] of a [`BrokerSession`] with their role and their name as identity;
//!   nobody else gets anything (no anonymous logins).
//! - [`Access`]: what a served broker needs besides its queue: the users, and its TLS
//!   identity (and the secret of its `pbrs://` URL).
//! - [`BrokerCredentials`]: what a worker or front end needs to reach a broker: its URL, a
//!   user name and a password, from a file or environment variables (never the command
//!   line). [`BrokerCredentials::connect`] logs in and returns the session.
//!
//! A served broker's root object is its login object ([`rpc_core::login`]): before login a
//! peer can reach nothing else.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rpc_core::login::{Credentials, LoginRef, Passwords, Portal, Realm};
use rpc_core::tls::{Identity, ServerTls};
use rpc_core::{CallError, Caller, Client, ObjectRef};

use crate::address::{DEFAULT_BROKER_PORT, check_host_port};
use crate::broker::BrokerRef;
use crate::role::Role;
use crate::service::BrokerService;
use crate::session::BrokerSession;

/// The longest user name, and the characters one may use.
pub const MAX_USER_LEN: usize = 64;

/// Checks a user name: 1 to [`MAX_USER_LEN`] letters, digits, `.`, `_` or `-`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid user name: use 1 to {MAX_USER_LEN} letters, digits, '.', '_' \
             or '-'"
        ))
    }
}

/// User names with their role and password hash. Cheap to clone; clones share the table.
#[derive(Clone, Debug, Default)]
pub struct Users {
    passwords: Passwords,
    roles: Arc<RwLock<HashMap<String, Role>>>,
}

impl Users {
    /// No users.
    pub fn new() -> Users {
        Users::default()
    }

    /// Adds (or replaces) `name` with `role` and `password` (hashed here).
    pub fn add(&self, name: &str, role: Role, password: &str) -> Result<(), CallError> {
        self.add_hashed(name, role, &Passwords::hash(password)?)
    }

    /// Adds (or replaces) `name` with `role` and a stored argon2 hash.
    pub fn add_hashed(&self, name: &str, role: Role, hash: &str) -> Result<(), CallError> {
        check_user_name(name).map_err(|message| CallError::Encode {
            what: "a user",
            message,
        })?;
        self.passwords.add_hash(name, hash)?;
        self.roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), role);
        Ok(())
    }

    /// The role of `name`, if it is a user.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.roles.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The password hashes, for the login object.
    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }
}

/// The realm of a broker: each login's avatar is a session with the user's role.
#[derive(Debug, Clone)]
pub struct BrokerRealm {
    service: BrokerService,
    users: Users,
}

impl BrokerRealm {
    /// The realm of `service` for `users`.
    pub fn new(service: BrokerService, users: Users) -> BrokerRealm {
        BrokerRealm { service, users }
    }
}

impl Realm for BrokerRealm {
    type Avatar = BrokerRef;

    async fn avatar(&self, caller: &Caller, _mind: Option<ObjectRef>) -> Result<BrokerRef, String> {
        let Caller::User(name) = caller else {
            return Err("log in with a user name and password".into());
        };
        let role = self
            .users
            .role(name)
            .ok_or_else(|| "the user has no role on this broker".to_owned())?;
        Ok(BrokerRef::new(BrokerSession::new(
            self.service.clone(),
            role,
            name.as_str(),
        )))
    }
}

/// What a served broker needs besides its queue: who may log in, and its TLS side. Its
/// `Debug` shows neither the URL's secret nor the key.
#[derive(Clone)]
pub struct Access {
    pub(crate) users: Users,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) url_secret: Option<String>,
    pub(crate) plaintext_passwords: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("users", &self.users.len())
            .field(
                "tls",
                &self.tls.as_ref().map(|t| t.identity().fingerprint()),
            )
            .field("url_secret", &self.url_secret.as_ref().map(|_| "<hidden>"))
            .field("plaintext_passwords", &self.plaintext_passwords)
            .finish()
    }
}

impl Access {
    /// `users` may log in, over TLS with `identity`.
    pub fn tls(users: Users, identity: Identity) -> Access {
        Access {
            users,
            tls: Some(ServerTls::new(identity)),
            url_secret: None,
            plaintext_passwords: false,
        }
    }

    /// `users` may log in over plaintext TCP: from this host only (a password never crosses
    /// a network unencrypted), unless [`allow_plaintext_passwords`](Access::allow_plaintext_passwords).
    pub fn plaintext(users: Users) -> Access {
        Access {
            users,
            tls: None,
            url_secret: None,
            plaintext_passwords: false,
        }
    }

    /// Checks passwords from other hosts over plaintext too (`--insecure-plaintext`).
    pub fn allow_plaintext_passwords(mut self) -> Access {
        self.plaintext_passwords = true;
        self
    }

    /// Registers the login object under `secret` (kept in the data directory), so that the
    /// broker's `pbrs://` URL stays the same across restarts. Without it, a new secret is
    /// made each time the broker starts.
    pub fn url_secret(mut self, secret: impl Into<String>) -> Access {
        self.url_secret = Some(secret.into());
        self
    }

    /// The login object of `service` for these users.
    pub(crate) fn login(&self, service: BrokerService) -> LoginRef {
        let mut portal = Portal::new(
            BrokerRealm::new(service, self.users.clone()),
            self.users.passwords().clone(),
        );
        if self.plaintext_passwords {
            portal = portal.allow_passwords_in_plaintext();
        }
        LoginRef::new(portal)
    }
}

/// The text of a credentials file for `user` (see [`BrokerCredentials::from_file`]).
pub fn credentials_file(broker: &str, user: &str, password: &str) -> String {
    format!(
        "# pbrs broker credentials: keep this file private\nurl = {broker}\nuser = {user}\n\
         password = {password}\n"
    )
}

/// Writes a credentials file (from [`credentials_file`]) readable by its owner only,
/// replacing any file there (whatever its permissions were).
pub fn write_credentials(path: &Path, text: &str) -> Result<(), String> {
    crate::files::replace_private(path, text.as_bytes())
}

/// Checks where a broker is, as credentials give it: a `pbrs://` URL that parses, or the
/// `host:port` of a plaintext broker (see [`crate::address`]).
///
/// # Errors
/// What is wrong, and what to write instead.
pub fn check_location(location: &str) -> Result<(), String> {
    if location.starts_with("pbrs://") {
        return location
            .parse::<rpc_core::SturdyUrl>()
            .map(drop)
            .map_err(|e| e.to_string());
    }
    check_host_port(location, DEFAULT_BROKER_PORT).map_err(|e| {
        format!(
            "{e}; or, for a TLS broker, its pbrs:// URL (the `broker url:` line broker-server \
             prints, which `broker-server add-user` writes into credentials files)"
        )
    })
}

/// The environment variables [`BrokerCredentials::from_env`] reads.
pub const ENV_URL: &str = "PBRS_BROKER_URL";
/// See [`ENV_URL`].
pub const ENV_USER: &str = "PBRS_USER";
/// See [`ENV_URL`].
pub const ENV_PASSWORD: &str = "PBRS_PASSWORD";

/// What a worker or front end needs to reach a broker: where it is (a `pbrs://` URL, or a
/// plain `host:port` for a plaintext broker on this host) and a user's credentials. Its
/// `Debug` shows neither the password nor the URL's secret.
#[derive(Clone)]
pub struct BrokerCredentials {
    /// The broker's `pbrs://` URL, or `host:port` of a plaintext broker.
    pub broker: String,
    /// The user name and password.
    pub credentials: Credentials,
}

impl std::fmt::Debug for BrokerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCredentials")
            .field("broker", &rpc_core::SturdyUrl::redact(&self.broker))
            .field("user", &self.credentials.user())
            .finish()
    }
}

impl BrokerCredentials {
    /// `user`'s credentials for the broker at `broker`.
    pub fn new(broker: impl Into<String>, user: &str, password: &str) -> BrokerCredentials {
        BrokerCredentials {
            broker: broker.into(),
            credentials: Credentials::new(user, password),
        }
    }

    /// Reads a credentials file: lines `url = ...`, `user = ...`, `password = ...` (blank
    /// lines and `#` comments allowed), as `broker-server add-user` writes it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<BrokerCredentials, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "could not read the credentials file {}: {e}",
                path.display()
            )
        })?;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                format!(
                    "{}:{}: expected `key = value` (url, user, password)",
                    path.display(),
                    n + 1
                )
            })?;
            fields.insert(key.trim(), value.trim());
        }
        let field = |key: &str| {
            fields.get(key).copied().ok_or_else(|| {
                format!(
                    "the credentials file {} has no `{key} = ...` line",
                    path.display()
                )
            })
        };
        let url = field("url")?;
        check_location(url).map_err(|e| format!("the url in {}: {e}", path.display()))?;
        Ok(BrokerCredentials::new(
            url,
            field("user")?,
            field("password")?,
        ))
    }

    /// Reads [`ENV_URL`], [`ENV_USER`] and [`ENV_PASSWORD`].
    pub fn from_env() -> Result<BrokerCredentials, String> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))
        };
        let url = var(ENV_URL)?;
        check_location(&url).map_err(|e| format!("{ENV_URL}: {e}"))?;
        Ok(BrokerCredentials::new(
            url,
            &var(ENV_USER)?,
            &var(ENV_PASSWORD)?,
        ))
    }

    /// Connects to the broker, logs in, and returns the session: over TLS checking the
    /// URL's pin when `broker` is a `pbrs://` URL, else over plaintext TCP. A plain
    /// `host:port` is the user's explicit choice of plaintext: the password is then sent even
    /// to another host, if that broker accepts it (`broker-server --insecure-plaintext`).
    pub async fn connect(&self) -> Result<BrokerRef, CallError> {
        if self.broker.starts_with("pbrs://") {
            let login: LoginRef = Client::connect_url(&self.broker).await?;
            return login.log_in(&self.credentials, None).await;
        }
        check_location(&self.broker).map_err(|e| CallError::Io {
            context: "bad broker address".into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        let login: LoginRef = Client::connect(self.broker.as_str()).await?.root().await?;
        let credentials = self.credentials.clone().allow_plaintext();
        login.log_in(&credentials, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let secret = "0f".repeat(32);
        let identity = Identity::generate(&["localhost"]).unwrap();
        let access = Access::tls(Users::new(), identity).url_secret(secret.clone());
        assert!(!format!("{access:?}").contains(&secret));
        for broker in [
            format!("pbrs://{}@example.org:8990/{secret}", "ab".repeat(32)),
            format!("pbrs://{}@example.org:99999/{secret}", "ab".repeat(32)),
            format!("pbrs://{}@example.org:8990{secret}", "ab".repeat(32)),
        ] {
            let credentials = BrokerCredentials::new(broker, "w1", "hunter2");
            let shown = format!("{credentials:?}");
            assert!(
                !shown.contains(&secret) && !shown.contains("hunter2"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_credentials_file_reads_back_and_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!(
            "pbrs-credentials-{}",
            &rpc_core::SturdyUrl::new_secret().unwrap()[..16]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w1.credentials");
        write_credentials(&path, &credentials_file("127.0.0.1:8990", "w1", "pw")).unwrap();
        let read = BrokerCredentials::from_file(&path).unwrap();
        assert_eq!(
            (read.broker.as_str(), read.credentials.user()),
            ("127.0.0.1:8990", "w1")
        );
        std::fs::write(&path, "url = 127.0.0.1:8990\nuser = w1\n").unwrap();
        let e = BrokerCredentials::from_file(&path).unwrap_err();
        assert!(e.contains("password"), "{e}");
        std::fs::write(&path, "url = localhost\nuser = w1\npassword = pw\n").unwrap();
        let e = BrokerCredentials::from_file(&path).unwrap_err();
        assert!(
            e.starts_with(&format!("the url in {}: ", path.display()))
                && e.contains("\"localhost\" has no port: give HOST:PORT, e.g. localhost:8990")
                && e.contains("pbrs:// URL"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_broker_address_without_a_port_says_to_add_one() {
        let credentials = BrokerCredentials::new("localhost", "fe", "pw");
        let e = credentials.connect().await.unwrap_err().to_string();
        assert!(
            e.starts_with(
                "bad broker address: \"localhost\" has no port: give HOST:PORT, e.g. \
                 localhost:8990"
            ),
            "{e}"
        );
    }
}
