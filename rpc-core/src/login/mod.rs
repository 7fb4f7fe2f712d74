//! Login: a per-user root object (PB's cred, without MD5).
//!
//! A server makes a [`Portal`] its root (`Server::bind(addr, LoginRef::new(portal))`) or
//! registers it under a `pbrs://` URL. Before login that is all a client can reach. A client
//! logs in with a user name and password ([`LoginRef::log_in`]), or without one (as the
//! client certificate it proved, or anonymously if the server allows it,
//! [`LoginRef::log_in_anonymously`]), and gets back its **avatar**: the object this user may
//! use, made by the application's [`Realm`]. The client may pass a **mind**, a reference to
//! one of its own objects, which the avatar can call back.
//!
//! - Passwords are checked against argon2 hashes ([`Passwords`]); never stored nor compared
//!   in clear. A failed login says only [`LoginError::Refused`], whether or not the user
//!   exists. After [`Portal::max_failures`] failed logins (3 by default) on one connection,
//!   the server answers [`LoginError::TooManyAttempts`] and closes that connection.
//! - A password never crosses a network unencrypted: over plaintext TCP between two hosts,
//!   the client does not send it and the server does not check it
//!   ([`LoginError::NeedsEncryption`]), unless the server opts in
//!   ([`Portal::allow_passwords_in_plaintext`]) and the client too
//!   ([`Credentials::allow_plaintext`]). Loopback, Unix-socket and in-memory connections count
//!   as local.
//! - [`Realm::logout`] runs exactly once per avatar handed out: when the client's last
//!   reference to it drops, or its connection closes.
//! - Handlers learn who calls from [`Peer::caller`](crate::Peer::caller) (the user, the TLS
//!   client certificate, or anonymous).
//!
//! ```
//! use rpc_core::login::{Credentials, LoginRef, Passwords, Portal, Realm};
//! use rpc_core::{Caller, Client, ObjectRef, Server, remote};
//!
//! #[remote]
//! pub trait Greeter {
//!     async fn remote_hello(&self) -> String;
//! }
//!
//! struct Hello(String);
//! impl Greeter for Hello {
//!     async fn remote_hello(&self) -> String { format!("hello, {}", self.0) }
//! }
//!
//! struct Users;
//! impl Realm for Users {
//!     type Avatar = GreeterRef;
//!     async fn avatar(&self, caller: &Caller, _mind: Option<ObjectRef>) -> Result<GreeterRef, String> {
//!         match caller {
//!             Caller::User(name) => Ok(GreeterRef::new(Hello(name.clone()))),
//!             _ => Err("log in with a password".into()),
//!         }
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let passwords = Passwords::new();
//! passwords.add("ann", "correct horse battery staple")?;
//! let portal = Portal::new(Users, passwords);
//! let server = Server::bind("127.0.0.1:0", LoginRef::new(portal)).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run());
//!
//! let login: LoginRef = Client::connect(addr).await?.root().await?;
//! let me = Credentials::new("ann", "correct horse battery staple");
//! let greeter: GreeterRef = login.log_in(&me, None).await?;
//! assert_eq!(greeter.hello().await?, "hello, ann");
//! # Ok(()) }
//! ```

mod passwords;
mod portal;

pub use crate::error::LoginError;
pub use passwords::Passwords;
pub use portal::{Portal, Realm};

use crate::error::CallError;
use crate::object::{ObjectRef, RemoteRef, typed};
use crate::remote;

/// The login object's remote interface. Servers serve a [`Portal`]; clients call it through
/// [`LoginRef::log_in`] and [`LoginRef::log_in_anonymously`], which check what comes back.
#[remote]
pub trait Login {
    /// Logs in as `user` with `password`; answers the user's avatar.
    async fn remote_login(
        &self,
        user: String,
        password: String,
        mind: Option<ObjectRef>,
    ) -> Result<ObjectRef, LoginError>;

    /// Logs in without a password: as the client certificate this connection proved (mutual
    /// TLS), else anonymously if the server allows it; answers the avatar.
    async fn remote_login_anonymous(
        &self,
        mind: Option<ObjectRef>,
    ) -> Result<ObjectRef, LoginError>;
}

/// A user name and password, for [`LoginRef::log_in`]. Its `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
    allow_plaintext: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// `user`'s credentials.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
            allow_plaintext: false,
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Sends the password even over an unencrypted connection to another host (the server
    /// must opt in too). Anyone on the path can then read it: only for networks you trust.
    pub fn allow_plaintext(mut self) -> Credentials {
        self.allow_plaintext = true;
        self
    }
}

impl LoginRef {
    /// Logs in with `credentials`, passing `mind` (an object of this side's for the avatar to
    /// call back, if the realm wants one), and returns the avatar as `A`.
    ///
    /// # Errors
    /// [`CallError::Login`] when the login is refused (wrong password, too many attempts, no
    /// encryption, ...); the avatar's interface not being `A` is a [`CallError::Decode`].
    pub async fn log_in<A: RemoteRef>(
        &self,
        credentials: &Credentials,
        mind: Option<ObjectRef>,
    ) -> Result<A, CallError> {
        if let Some(peer) = self.peer()
            && !peer.is_encrypted()
            && !peer.is_local()
            && !credentials.allow_plaintext
        {
            return Err(CallError::Login(LoginError::NeedsEncryption));
        }
        let avatar = self
            .login(credentials.user.clone(), credentials.password.clone(), mind)
            .await??;
        typed(avatar, "the server's avatar")
    }

    /// Logs in without a password (as this connection's client certificate, or anonymously)
    /// and returns the avatar as `A`.
    ///
    /// # Errors
    /// As [`log_in`](LoginRef::log_in).
    pub async fn log_in_anonymously<A: RemoteRef>(
        &self,
        mind: Option<ObjectRef>,
    ) -> Result<A, CallError> {
        let avatar = self.login_anonymous(mind).await??;
        typed(avatar, "the server's avatar")
    }
}
