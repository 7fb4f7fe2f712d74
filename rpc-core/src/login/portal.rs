//! [`Portal`], the login object a server serves, and [`Realm`], what the application writes:
//! given who logged in (and their mind), the avatar.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::{Login, LoginError, Passwords};
use crate::dispatch::{Args, Dispatch, HandlerFuture};
use crate::error::RemoteError;
use crate::object::{ObjectRef, RemoteRef};
use crate::peer::{Caller, Peer};

/// The application's side of login: makes each caller's avatar.
pub trait Realm: Send + Sync + 'static {
    /// The avatars' type (a `<Trait>Ref` made with `new`).
    type Avatar: RemoteRef;

    /// The avatar of `caller` ([`Caller::User`] after a password login; after a login without
    /// password, [`Caller::Certificate`] or [`Caller::Anonymous`]), who passed `mind` (an
    /// object of theirs to call back) if any. An `Err` refuses the login with that reason
    /// ([`LoginError::Denied`]).
    fn avatar(
        &self,
        caller: &Caller,
        mind: Option<ObjectRef>,
    ) -> impl Future<Output = Result<Self::Avatar, String>> + Send;

    /// Runs exactly once for every avatar handed out, when the client's last reference to it
    /// drops or its connection closes. It runs on whichever thread notices: keep it short.
    fn logout(&self, caller: &Caller) {
        let _ = caller;
    }
}

/// The login object: checks passwords against [`Passwords`] and asks a [`Realm`] for
/// avatars. Serve it as `LoginRef::new(portal)`. See the [module docs](super).
pub struct Portal<R: Realm> {
    realm: Arc<R>,
    passwords: Passwords,
    anonymous: bool,
    plaintext_passwords: bool,
    max_failures: u32,
}

impl<R: Realm> std::fmt::Debug for Portal<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("passwords", &self.passwords)
            .field("anonymous", &self.anonymous)
            .field("plaintext_passwords", &self.plaintext_passwords)
            .field("max_failures", &self.max_failures)
            .finish()
    }
}

impl<R: Realm> Portal<R> {
    /// A portal to `realm` for the users in `passwords`. No anonymous logins; no password
    /// over an unencrypted connection between two hosts; 3 failed logins close a connection.
    pub fn new(realm: R, passwords: Passwords) -> Portal<R> {
        Passwords::prepare();
        Portal {
            realm: Arc::new(realm),
            passwords,
            anonymous: false,
            plaintext_passwords: false,
            max_failures: 3,
        }
    }

    /// Lets clients without a password or certificate log in, as [`Caller::Anonymous`].
    pub fn allow_anonymous(mut self) -> Portal<R> {
        self.anonymous = true;
        self
    }

    /// Checks passwords sent over unencrypted connections between two hosts too. Anyone on
    /// the path can read them: only for networks you trust.
    pub fn allow_passwords_in_plaintext(mut self) -> Portal<R> {
        self.plaintext_passwords = true;
        self
    }

    /// Password checks a connection may ask for (3 by default, at least 1): once that many
    /// failed, it is closed. One login at a time per connection, so concurrent logins cannot
    /// check more.
    pub fn max_failures(mut self, failures: u32) -> Portal<R> {
        self.max_failures = failures.max(1);
        self
    }

    /// The avatar of `caller`, for the login under way on `peer`'s connection, wrapped so
    /// that its release runs the logout once and logs the connection out. Any failure ends
    /// the login under way.
    async fn hand_out(
        &self,
        peer: &Peer,
        caller: Caller,
        mind: Option<ObjectRef>,
    ) -> Result<ObjectRef, LoginError> {
        let made = self.realm.avatar(&caller, mind).await;
        let inner = made.map_err(LoginError::Denied).and_then(|avatar| {
            avatar
                .object()
                .local_dispatch()
                .cloned()
                .ok_or_else(|| LoginError::Denied("the avatar must be a local object".into()))
        });
        let inner = match inner {
            Ok(inner) => inner,
            Err(e) => {
                peer.login().end();
                return Err(e);
            }
        };
        let user = match &caller {
            Caller::User(user) => Some(user.clone()),
            _ => None,
        };
        peer.login().finish(user);
        tracing::info!(peer = %peer.addr(), ?caller, "logged in");
        let realm = Arc::clone(&self.realm);
        let peer_addr = peer.addr().to_owned();
        let connection = peer.downgrade();
        let logged_in = LoggedIn {
            inner,
            logout: Some(Box::new(move || {
                tracing::info!(peer = %peer_addr, ?caller, "logged out");
                if let Some(shared) = connection.upgrade() {
                    shared.login.end();
                }
                realm.logout(&caller);
            })),
        };
        Ok(ObjectRef::from_dispatch(Arc::new(logged_in)))
    }
}

/// The peer of the login call being handled: logins are only made over connections.
fn calling_peer() -> Result<Peer, LoginError> {
    Peer::current().ok_or_else(|| LoginError::Denied("log in over a connection".into()))
}

impl<R: Realm> Login for Portal<R> {
    async fn remote_login(
        &self,
        user: String,
        password: String,
        mind: Option<ObjectRef>,
    ) -> Result<ObjectRef, LoginError> {
        let peer = calling_peer()?;
        if !peer.is_encrypted() && !peer.is_local() && !self.plaintext_passwords {
            tracing::warn!(peer = %peer.addr(), "refused a password login over plaintext");
            return Err(LoginError::NeedsEncryption);
        }
        peer.login().begin(true, self.max_failures)?;
        if !self.passwords.check(&user, &password).await {
            let checks = peer.login().end();
            tracing::warn!(peer = %peer.addr(), checks, "login failed");
            if checks >= self.max_failures {
                peer.close_after_answers(Duration::from_secs(2), "too many failed logins");
                return Err(LoginError::TooManyAttempts);
            }
            return Err(LoginError::Refused);
        }
        self.hand_out(&peer, Caller::User(user), mind).await
    }

    async fn remote_login_anonymous(
        &self,
        mind: Option<ObjectRef>,
    ) -> Result<ObjectRef, LoginError> {
        let peer = calling_peer()?;
        let caller = match peer.certificate() {
            Some(certificate) => Caller::Certificate(certificate.clone()),
            None if self.anonymous => Caller::Anonymous,
            None => return Err(LoginError::AnonymousNotAllowed),
        };
        peer.login().begin(false, self.max_failures)?;
        self.hand_out(&peer, caller, mind).await
    }
}

/// An avatar as exported: the realm's object, and the logout to run when the connection's
/// hold on it ends (the peer dropped its last reference, or the connection closed).
struct LoggedIn {
    inner: Arc<dyn Dispatch>,
    logout: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Dispatch for LoggedIn {
    fn interface(&self) -> &'static str {
        self.inner.interface()
    }

    fn dispatch(&self, method: &str, args: Args<'_>) -> Result<HandlerFuture, RemoteError> {
        self.inner.dispatch(method, args)
    }

    fn direct(&self) -> Option<&dyn Any> {
        self.inner.direct()
    }

    fn method_name(&self, method: &str) -> Option<&'static str> {
        self.inner.method_name(method)
    }
}

impl Drop for LoggedIn {
    fn drop(&mut self) {
        if let Some(logout) = self.logout.take() {
            // A panicking hook must not take the connection's cleanup down with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(logout)).is_err() {
                tracing::error!("a Realm::logout panicked");
            }
        }
    }
}
