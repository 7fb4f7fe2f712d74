//! [`Peer`]: the other end of a connection, as seen from a client, from a reference, or from
//! inside a remote method handler ([`Peer::current`]).
//!
//! It tells when the connection is lost (PB's `notifyOnDisconnect`): await
//! [`Peer::disconnected`], or register a callback with [`Peer::on_disconnect`] and take it
//! back with [`DisconnectHook::cancel`]. Each callback runs at most once.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};

use crate::conn::{Shared, caller};
use crate::tls::PeerCertificate;

/// The other end of a connection. Cheap to clone; holding one does not keep the connection
/// open.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("addr", &self.addr())
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Peer {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Peer { shared }
    }

    /// Inside a remote method handler: the peer that made the call. `None` elsewhere (and in
    /// calls of local objects).
    pub fn current() -> Option<Peer> {
        caller::current().map(Peer::new)
    }

    /// The peer's address (or a description of the transport).
    pub fn addr(&self) -> &str {
        self.shared.peer()
    }

    /// Who the caller is: the user it logged in as (see the `login` module), else the client
    /// certificate it proved (mutual TLS), else anonymous.
    pub fn caller(&self) -> Caller {
        if let Some(user) = self.user() {
            return Caller::User(user);
        }
        match self.certificate() {
            Some(certificate) => Caller::Certificate(certificate.clone()),
            None => Caller::Anonymous,
        }
    }

    /// The user the peer logged in as on this connection (see the `login` module).
    pub fn user(&self) -> Option<String> {
        self.shared.login.user()
    }

    /// The certificate the peer proved it holds, when the server requires client
    /// certificates (mutual TLS; see [`ServerTls`](crate::tls::ServerTls)).
    pub fn certificate(&self) -> Option<&PeerCertificate> {
        self.shared.peer_info().certificate.as_ref()
    }

    /// The login state of the connection (kept for the `login` module, above this one).
    pub(crate) fn login(&self) -> &crate::conn::peer_info::Login {
        &self.shared.login
    }

    /// A handle that does not keep the connection's state alive.
    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    /// Stops taking calls, lets the answers of those running go out (within `grace`), then
    /// closes the connection, saying `why`.
    pub(crate) fn close_after_answers(&self, grace: std::time::Duration, why: &'static str) {
        let connection = self.shared.connection();
        tokio::spawn(async move { crate::conn::drain(&connection, grace, why).await });
    }

    /// Whether the connection runs over TLS.
    pub fn is_encrypted(&self) -> bool {
        self.shared.peer_info().encrypted
    }

    /// Whether both ends are on this host (loopback TCP, an in-memory or Unix-socket
    /// transport), so that nothing crosses a network.
    pub fn is_local(&self) -> bool {
        self.shared.peer_info().local
    }

    /// `true` until the connection is lost or closed.
    pub fn is_connected(&self) -> bool {
        self.shared.closed_reason().is_none()
    }

    /// Why the connection closed; `None` while it is open.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.shared.closed_reason()
    }

    /// Once the connection is closed, `afterword` follows its reason in the errors of calls
    /// still made on it (what became of the connection since: it was replaced, ...).
    pub(crate) fn set_afterword(&self, afterword: &str) {
        self.shared.set_afterword(afterword);
    }

    /// Resolves once the connection is lost or closed (at once if it already is).
    pub fn disconnected(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.closed()
    }

    /// Calls `callback` with the reason once the connection is lost or closed (at once if it
    /// already is). It runs on whichever thread notices the loss: keep it short, never block.
    pub fn on_disconnect(&self, callback: impl FnOnce(&str) + Send + 'static) -> DisconnectHook {
        let id = self.shared.add_disconnect_hook(Box::new(callback));
        DisconnectHook {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// How many objects this side exports on the connection (the root object included, and
    /// objects passed in calls made but not yet sent, which count against
    /// [`Config::max_exported_objects`](crate::Config::max_exported_objects) but which the peer
    /// cannot reach yet).
    pub fn exported_objects(&self) -> usize {
        self.shared.exported_count()
    }

    /// How many of the peer's objects this side holds live proxies of.
    pub fn imported_objects(&self) -> usize {
        self.shared.imported_count()
    }

    /// Bytes queued for the peer and not yet written (bounded by
    /// [`Config::output_budget`](crate::Config::output_budget)).
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes()
    }

    /// Calls of the peer running on this side now (bounded by
    /// [`Config::max_in_flight_calls`](crate::Config::max_in_flight_calls)).
    pub fn calls_in_flight(&self) -> usize {
        self.shared.calls_in_flight()
    }

    /// Closes the connection: pending calls fail with `Disconnected`.
    pub fn close(&self) {
        self.shared.close_locally("closed by this side");
    }
}

/// Who is calling, as [`Peer::caller`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Caller {
    /// A user who logged in with a password.
    User(String),
    /// A client known by its TLS certificate (mutual TLS), not logged in.
    Certificate(PeerCertificate),
    /// Neither.
    Anonymous,
}

/// A registered disconnect callback; [`cancel`](DisconnectHook::cancel) takes it back.
/// Dropping the hook leaves the callback registered.
#[derive(Debug)]
pub struct DisconnectHook {
    shared: Weak<Shared>,
    id: u64,
}

impl DisconnectHook {
    /// Un-registers the callback. Returns `false` if it already ran (or the connection is
    /// gone).
    pub fn cancel(self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| shared.remove_disconnect_hook(self.id))
    }
}
