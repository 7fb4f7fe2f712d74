//! [`ReconnectingClient`]: a client that stays connected, reconnecting by itself whenever the
//! connection is lost (PB's `ReconnectingClientFactory`).
//!
//! A plain [`Client`] is one connection: once it is lost, every call fails and the program
//! must connect again and fetch the root object again. A `ReconnectingClient<R>` does that
//! for you, in a background task:
//!
//! ```
//! use std::time::Duration;
//! use rpc_core::{remote, ReconnectOptions, ReconnectingClient, Server};
//!
//! #[remote]
//! pub trait Clock {
//!     /// Seconds since the server started.
//!     async fn remote_uptime(&self) -> u64;
//! }
//! struct Uptime;
//! impl Clock for Uptime {
//!     async fn remote_uptime(&self) -> u64 { 42 }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let server = Server::bind("127.0.0.1:0", ClockRef::new(Uptime)).await?;
//! let addr = server.local_addr().to_string();
//! tokio::spawn(server.run());
//!
//! let client = ReconnectingClient::<ClockRef>::connect(&addr, ReconnectOptions::default());
//! // Wait (at most 5 s) for a connection, and call through its root object.
//! let clock = client.root_within(Duration::from_secs(5)).await?;
//! assert_eq!(clock.uptime().await?, 42);
//! println!("{}", client.state()); // "connected to 127.0.0.1:... for 1 ms (connection 1)"
//! # Ok(()) }
//! ```
//!
//! # What happens when the connection is lost
//!
//! - Calls in flight at the loss fail with [`CallError::Disconnected`], as on any connection:
//!   they may or may not have run, and the client does not repeat them (only the program
//!   knows whether that is safe).
//! - The client tries again, first after a short random wait, then with waits growing as
//!   [`Backoff`] says: by default up to 100 ms, 200 ms, 400 ms, ... doubling up to 30 s,
//!   each drawn at random below its ceiling (full jitter) so that the clients of a restarted
//!   server do not all come back at the same instant. It tries until it connects or is closed.
//! - Once connected again, it fetches the root object again: [`ReconnectingClient::root`]
//!   returns the new one. Take the root from the client for each piece of work (it is cheap)
//!   rather than keeping one for ever.
//! - References obtained through the lost connection (the old root, objects it returned)
//!   stay dead: the objects they named lived on the old connection, and a new one cannot
//!   bring them back. Their calls fail with [`CallError::Disconnected`] whose reason says why
//!   that connection was lost and that the client replaces it. Fetch such objects again from
//!   the new root.
//!
//! # Watching the connection
//!
//! [`ReconnectingClient::state`] says where the client stands ([`ConnectionState`]:
//! connected since when and to whom; or reconnecting since when, how many attempts failed and
//! the last error; or closed), and [`ReconnectingClient::watch_state`] gives a
//! [`tokio::sync::watch::Receiver`] that sees every change, to show a status or log it.
//!
//! # Transports
//!
//! [`connect`](ReconnectingClient::connect) uses plain TCP,
//! [`connect_tls`](ReconnectingClient::connect_tls) TLS checked as a
//! [`ClientTls`] says, and [`connect_url`](ReconnectingClient::connect_url) a sturdy
//! `pbrs://` URL, whose named object then plays the root. The address is resolved again at
//! each attempt, so a server that moved in DNS is found.
//!
//! # Stopping
//!
//! [`close`](ReconnectingClient::close) stops the background task and closes the current
//! connection (calls on it fail with `Disconnected`). Dropping every clone of the client does
//! the same: references obtained from it do not keep it connected.

mod backoff;
mod state;

pub use backoff::{Backoff, Jitter};
pub use state::ConnectionState;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::client::Client;
use crate::config::Config;
use crate::error::CallError;
use crate::object::RemoteRef;
use crate::peer::Peer;
use crate::sturdy::SturdyUrl;
use crate::tls::ClientTls;

/// How a [`ReconnectingClient`] connects and waits between attempts.
#[derive(Debug, Clone, Default)]
pub struct ReconnectOptions {
    /// The configuration of each connection (timeouts, limits, keepalive, ...). The
    /// keepalive is what notices a server that vanished without closing the connection.
    pub config: Config,
    /// How the wait between attempts grows. Default: 100 ms doubling up to 30 s, full jitter.
    pub backoff: Backoff,
}

impl ReconnectOptions {
    /// The same options with `config` for each connection.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The same options with `backoff` between attempts.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}

/// What the client connects to.
#[derive(Clone)]
enum Target {
    Tcp(String),
    Tls(String, ClientTls),
    Url(SturdyUrl, ClientTls),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(addr) | Target::Tls(addr, _) => f.write_str(addr),
            Target::Url(url, _) => f.write_str(url.addr()),
        }
    }
}

impl Target {
    /// One attempt: a new connection, its root (or the URL's object), and its peer.
    async fn connect<R: RemoteRef>(&self, config: &Config) -> Result<(R, Peer), CallError> {
        let client = match self {
            Target::Tcp(addr) => Client::connect_with(addr.as_str(), config.clone()).await?,
            Target::Tls(addr, tls) => Client::connect_tls_with(addr, tls, config.clone()).await?,
            Target::Url(url, tls) => {
                let object: R = Client::connect_url_with(url, tls, config.clone()).await?;
                let peer = object.peer().ok_or_else(|| {
                    CallError::protocol("the object a sturdy URL names is not remote")
                })?;
                return Ok((object, peer));
            }
        };
        Ok((client.root().await?, client.peer()))
    }
}

/// A client that reconnects by itself whenever its connection is lost, with capped
/// exponential back-off and jitter, and fetches its root object `R` (a `<Trait>Ref`) again
/// each time. See [the module](self) for what happens on a loss.
///
/// Cheap to clone: clones share the connection and the background task, which stops (and
/// closes the connection) on [`close`](ReconnectingClient::close) or once every clone is
/// dropped.
pub struct ReconnectingClient<R: RemoteRef> {
    shared: Arc<Shared<R>>,
    token: CancellationToken,
    /// Stops the task when the last clone is dropped.
    stop_on_drop: Arc<DropGuard>,
}

/// What the client's handles and its task share.
struct Shared<R> {
    target: String,
    /// Changed only through [`Shared::publish`] and [`Shared::close`], so that nothing
    /// follows `Closed`.
    state: watch::Sender<ConnectionState>,
    /// The root of the current connection; `None` when not connected.
    root: watch::Sender<Option<R>>,
}

impl<R: RemoteRef> Shared<R> {
    /// Publishes `state` with `root`, under the state's lock, unless the client is closed;
    /// `false` if it is.
    fn publish(&self, state: ConnectionState, root: Option<R>) -> bool {
        self.state.send_if_modified(|current| {
            if current.is_closed() {
                return false;
            }
            self.root.send_replace(root);
            *current = state;
            true
        })
    }

    /// Publishes `Closed` for good and closes the current connection, if any.
    fn close(&self) {
        self.state.send_replace(ConnectionState::Closed);
        if let Some(peer) = self.root.send_replace(None).as_ref().and_then(R::peer) {
            retire(&peer);
        }
    }
}

/// Closes the connection of a closed client, saying so to calls still made on it.
fn retire(peer: &Peer) {
    peer.close();
    peer.set_afterword(CLOSED);
}

impl<R: RemoteRef> Clone for ReconnectingClient<R> {
    fn clone(&self) -> Self {
        ReconnectingClient {
            shared: Arc::clone(&self.shared),
            token: self.token.clone(),
            stop_on_drop: Arc::clone(&self.stop_on_drop),
        }
    }
}

impl<R: RemoteRef> fmt::Debug for ReconnectingClient<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("target", &self.shared.target)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl<R: RemoteRef> ReconnectingClient<R> {
    /// Connects over plain TCP to `addr` (`"host:port"` or a `SocketAddr`), and stays
    /// connected. Returns at once:
    /// the first connection is made in the background (wait for it with
    /// [`root_within`](Self::root_within)).
    ///
    /// # Panics
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn connect(addr: impl ToString, options: ReconnectOptions) -> Self {
        Self::start(Target::Tcp(addr.to_string()), options)
    }

    /// Connects over TLS to `addr` (`"host:port"`: the host is the name TLS checks), checking the server as `tls` says at each
    /// connection; otherwise like [`connect`](Self::connect).
    pub fn connect_tls(addr: impl ToString, tls: ClientTls, options: ReconnectOptions) -> Self {
        Self::start(Target::Tls(addr.to_string(), tls), options)
    }

    /// Connects to the object a sturdy URL names (`pbrs://<fingerprint>@host:port/<secret>`),
    /// over TLS pinned to the URL's fingerprint; that object plays the root, looked up again
    /// at each connection. Otherwise like [`connect`](Self::connect).
    ///
    /// # Errors
    /// [`CallError::InvalidUrl`] when the URL does not parse; nothing is started then.
    pub fn connect_url(url: &str, options: ReconnectOptions) -> Result<Self, CallError> {
        let url: SturdyUrl = url.parse()?;
        let tls = ClientTls::pinned(url.fingerprint());
        Ok(Self::start(Target::Url(url, tls), options))
    }

    fn start(target: Target, options: ReconnectOptions) -> Self {
        let shared = Arc::new(Shared {
            target: target.to_string(),
            state: watch::Sender::new(ConnectionState::starting()),
            root: watch::Sender::new(None),
        });
        let token = CancellationToken::new();
        tokio::spawn(run(Arc::clone(&shared), target, options, token.clone()));
        ReconnectingClient {
            shared,
            stop_on_drop: Arc::new(token.clone().drop_guard()),
            token,
        }
    }

    /// The root object of the current connection. For the instant between a loss and the
    /// client noticing it, that may still be the lost connection's root (whose calls fail with
    /// [`CallError::Disconnected`]).
    ///
    /// # Errors
    /// [`CallError::Disconnected`] while the client is not connected (its reason says since
    /// when it has been trying, how many attempts failed and why), or once it is closed.
    pub fn root(&self) -> Result<R, CallError> {
        // Let go of the root's lock before reading the state: `publish` takes them the other
        // way round.
        let root = self.shared.root.borrow().clone();
        root.ok_or_else(|| self.not_connected())
    }

    /// The root object of the current connection, waiting at most `timeout` for one to be
    /// made when the client is not connected.
    ///
    /// # Errors
    /// [`CallError::Disconnected`] when no connection was made in time (saying why) or the
    /// client is closed.
    pub async fn root_within(&self, timeout: Duration) -> Result<R, CallError> {
        let mut roots = self.shared.root.subscribe();
        let mut states = self.shared.state.subscribe();
        let wait = async {
            tokio::select! {
                root = roots.wait_for(Option::is_some) => root.ok().and_then(|r| r.clone()),
                _ = states.wait_for(ConnectionState::is_closed) => None,
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Some(root)) => Ok(root),
            Ok(None) => Err(self.not_connected()),
            Err(_) => Err(CallError::disconnected(format!(
                "still not connected to {} after {timeout:?}: {}",
                self.shared.target,
                self.describe()
            ))),
        }
    }

    /// Where the client stands now: connected, reconnecting (since when, attempts so far,
    /// the last error) or closed.
    pub fn state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    /// A receiver that sees each change of [`state`](Self::state): `changed().await`, then
    /// `borrow()`. It sees `Closed` last, and then that the client is gone.
    pub fn watch_state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// `true` while connected.
    pub fn is_connected(&self) -> bool {
        self.shared.state.borrow().is_connected()
    }

    /// Stops reconnecting and closes the current connection: calls on it fail with
    /// [`CallError::Disconnected`]; [`root`](Self::root) fails from now on. Every clone of
    /// the client is closed.
    pub fn close(&self) {
        self.token.cancel();
        self.shared.close();
    }

    /// The error of a root asked for while there is none.
    fn not_connected(&self) -> CallError {
        CallError::disconnected(format!(
            "not connected to {}: {}",
            self.shared.target,
            self.describe()
        ))
    }

    /// The state, and what to do, for an error message.
    fn describe(&self) -> String {
        let state = self.shared.state.borrow();
        let advice = match *state {
            ConnectionState::Closed => "",
            _ => "; the client keeps trying by itself (root_within waits for it)",
        };
        format!("{}{advice}", *state)
    }
}

/// What calls on a lost connection of a client that reconnects say after the loss's reason.
const REPLACED: &str = "this reference belonged to that connection, which its \
                        ReconnectingClient replaces with a new one; the reference stays dead: \
                        take the root again from the client (root or root_within) and fetch \
                        objects anew from it";

/// What calls on the connection of a closed client say after "closed by this side".
const CLOSED: &str = "its ReconnectingClient was closed or dropped";

/// The background task: connect, wait for the loss, connect again, until cancelled.
async fn run<R: RemoteRef>(
    shared: Arc<Shared<R>>,
    target: Target,
    options: ReconnectOptions,
    token: CancellationToken,
) {
    let mut lost = None;
    let mut connections = 0u64;
    let connecting = |lost| connect_until_done(&shared, &target, &options, lost);
    while let Some((root, peer)) = token.run_until_cancelled(connecting(lost.take())).await {
        connections += 1;
        let connected = ConnectionState::Connected {
            since: Instant::now(),
            peer: peer.addr().to_owned(),
            connections,
        };
        if !shared.publish(connected, Some(root)) {
            retire(&peer);
            break;
        }
        tracing::info!(server = %target, connections, "connected");
        if token
            .run_until_cancelled(peer.disconnected())
            .await
            .is_none()
        {
            retire(&peer);
            break;
        }
        let reason = peer
            .disconnect_reason()
            .unwrap_or_else(|| "the connection closed".into());
        peer.set_afterword(REPLACED);
        tracing::warn!(server = %target, %reason, "connection lost; reconnecting");
        lost = Some(reason);
    }
    shared.close();
}

/// Tries to connect until it works, waiting as the back-off says between attempts (and once
/// before the first attempt after a loss), publishing each failure (and, first, that it is
/// not connected).
async fn connect_until_done<R: RemoteRef>(
    shared: &Shared<R>,
    target: &Target,
    options: &ReconnectOptions,
    lost: Option<String>,
) -> (R, Peer) {
    // After a loss, the loss counts as the first failure: wait before trying.
    let mut failures = u32::from(lost.is_some());
    let since = Instant::now();
    let mut attempts = 0;
    let mut last_error = None;
    loop {
        let trying = ConnectionState::Reconnecting {
            since,
            attempts,
            last_error: last_error.clone(),
            lost: lost.clone(),
        };
        shared.publish(trying, None);
        if failures > 0 {
            tokio::time::sleep(options.backoff.random_wait(failures - 1)).await;
        }
        match target.connect::<R>(&options.config).await {
            Ok(connected) => return connected,
            Err(e) => {
                attempts += 1;
                failures = failures.saturating_add(1);
                tracing::debug!(server = %target, attempts, error = %e, "could not connect");
                last_error = Some(Arc::new(e));
            }
        }
    }
}
