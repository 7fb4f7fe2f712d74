//! [`PeerInfo`]: what a connection knows of the peer at its other end — its address, whether
//! the transport is encrypted or stays on this host, the certificate it proved (mutual TLS) —
//! and [`Login`], who it logged in as.

use std::sync::Mutex;

use super::lifecycle::lock;
use crate::error::LoginError;
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

/// The login of a connection: at most one at a time, at most a few password checks ever.
#[derive(Debug, Default)]
pub(crate) struct Login {
    state: Mutex<LoginState>,
}

#[derive(Debug, Default)]
struct LoginState {
    session: Session,
    /// Password checks started on the connection, successful or not.
    checks: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum Session {
    #[default]
    Out,
    /// A login is being checked: others wait their turn by being refused.
    LoggingIn,
    /// Logged in, as a user (or without a name: anonymously, or by certificate).
    In(Option<String>),
}

impl Login {
    /// The user the peer logged in as.
    pub(crate) fn user(&self) -> Option<String> {
        match &lock(&self.state).session {
            Session::In(user) => user.clone(),
            _ => None,
        }
    }

    /// Starts a login: refused while another is under way or done
    /// ([`LoginError::AlreadyLoggedIn`]), and, for a password login (`checks_password`), once
    /// `max_checks` passwords were checked on the connection
    /// ([`LoginError::TooManyAttempts`]). The attempt counts from here, before its check, so
    /// concurrent logins cannot check more passwords than that.
    pub(crate) fn begin(&self, checks_password: bool, max_checks: u32) -> Result<(), LoginError> {
        let mut state = lock(&self.state);
        if state.session != Session::Out {
            return Err(LoginError::AlreadyLoggedIn);
        }
        if checks_password {
            if state.checks >= max_checks {
                return Err(LoginError::TooManyAttempts);
            }
            state.checks += 1;
        }
        state.session = Session::LoggingIn;
        Ok(())
    }

    /// The login under way succeeded, as `user` (none for anonymous or certificate logins).
    pub(crate) fn finish(&self, user: Option<String>) {
        lock(&self.state).session = Session::In(user);
    }

    /// The login under way failed, or the avatar it gave was released: the connection is
    /// logged out. Returns the password checks made so far.
    pub(crate) fn end(&self) -> u32 {
        let mut state = lock(&self.state);
        state.session = Session::Out;
        state.checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_login_at_a_time_and_a_few_checks_ever() {
        let login = Login::default();
        login.begin(true, 2).unwrap();
        assert_eq!(login.begin(true, 2), Err(LoginError::AlreadyLoggedIn));
        assert_eq!(login.end(), 1);
        login.begin(true, 2).unwrap();
        login.finish(Some("ann".into()));
        assert_eq!(login.user().as_deref(), Some("ann"));
        assert_eq!(login.begin(false, 2), Err(LoginError::AlreadyLoggedIn));
        // Logged out (the avatar released): the user is gone, and the checks stay counted.
        assert_eq!(login.end(), 2);
        assert_eq!(login.user(), None);
        assert_eq!(login.begin(true, 2), Err(LoginError::TooManyAttempts));
        login.begin(false, 2).unwrap();
        login.finish(None);
        assert_eq!(login.user(), None);
    }
}
