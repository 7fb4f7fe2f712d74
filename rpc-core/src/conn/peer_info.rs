//! [`PeerInfo`]: what a connection knows of the peer at its other end — its address, whether
//! the transport is encrypted or stays on this host, the certificate it proved (mutual TLS) —
//! and [`Login`], who it logged in as.

use std::sync::Mutex;

use super::lifecycle::lock;
use crate::tls::PeerCertificate;

/// The other end of a connection, as the transport tells it.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    /// Its address, or a description of the transport.
    pub(crate) addr: String,
    /// The connection runs over TLS.
    pub(crate) encrypted: bool,
    /// Both ends are on this host: loopback TCP, a Unix socket, an in-memory pipe.
    pub(crate) local: bool,
    /// The certificate the peer proved it holds (mutual TLS).
    pub(crate) certificate: Option<PeerCertificate>,
}

impl PeerInfo {
    /// A peer reached over a transport that never leaves the process or the host.
    pub(crate) fn local(addr: impl Into<String>) -> Self {
        PeerInfo {
            addr: addr.into(),
            encrypted: false,
            local: true,
            certificate: None,
        }
    }

    /// A peer over plain TCP from `remote` to `local_end`.
    pub(crate) fn tcp(
        remote: std::net::SocketAddr,
        local_end: Option<std::net::SocketAddr>,
    ) -> Self {
        PeerInfo {
            addr: remote.to_string(),
            encrypted: false,
            local: remote.ip().is_loopback() && local_end.is_some_and(|l| l.ip().is_loopback()),
            certificate: None,
        }
    }
}

/// Who the peer logged in as on this connection, and how many logins failed.
#[derive(Debug, Default)]
pub(crate) struct Login {
    state: Mutex<LoginState>,
}

#[derive(Debug, Default)]
struct LoginState {
    user: Option<String>,
    failures: u32,
}

impl Login {
    /// The user the peer logged in as.
    pub(crate) fn user(&self) -> Option<String> {
        lock(&self.state).user.clone()
    }

    /// Records a successful login as `user`; `false` if the connection already logged in.
    pub(crate) fn set_user(&self, user: &str) -> bool {
        let mut state = lock(&self.state);
        if state.user.is_some() {
            return false;
        }
        state.user = Some(user.to_owned());
        true
    }

    /// Records a failed login; returns how many failed so far.
    pub(crate) fn failed(&self) -> u32 {
        let mut state = lock(&self.state);
        state.failures = state.failures.saturating_add(1);
        state.failures
    }

    /// How many logins failed so far.
    pub(crate) fn failures(&self) -> u32 {
        lock(&self.state).failures
    }
}
