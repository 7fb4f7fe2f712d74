//! The [`Fibonacci`] remote object and the server that serves it from a data directory.
//!
//! [`FibService::start`] opens the store (refusing anything but fib-server's own database),
//! starts the [committer](super::committer) and listens; [`FibService::run_until`] serves
//! until the shutdown future resolves (or saving fails), lets the calls in flight finish,
//! and closes the database.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use num_bigint::BigUint;
use rpc_core::{CallError, Server, remote};

use super::committer::{CommitStats, Committer, FibError};
use super::store::{Store, StoreError};

/// The root object of a `fib-server`: distinct Fibonacci numbers, none handed out twice,
/// to every caller, across restarts and crashes of the server.
#[remote]
pub trait Fibonacci {
    /// The next number of the sequence 1, 2, 3, 5, 8, ...: saved durably before it is
    /// answered, and never handed out again, to anyone. It travels as a big integer (its
    /// 32-bit digits), so the server spends no time on decimal: the caller formats it.
    async fn remote_next(&self) -> Result<BigUint, FibError>;

    /// How many numbers this server process handed out, in how many commits (fsyncs).
    async fn remote_stats(&self) -> CommitStats;
}

/// The object behind [`FibonacciRef`]: a handle to the committer.
struct Numbers {
    committer: Arc<Committer>,
}

impl Fibonacci for Numbers {
    async fn remote_next(&self) -> Result<BigUint, FibError> {
        self.committer.next().await
    }

    async fn remote_stats(&self) -> CommitStats {
        self.committer.stats()
    }
}

/// Why a fib-server cannot start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory or its database is not usable, or saving failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be listened on.
    #[error(
        "cannot listen on {addr}: {source}. Is another program using that port? Give another \
         --listen address"
    )]
    Listen {
        /// The address asked for.
        addr: String,
        /// What the system said.
        source: CallError,
    },
    /// A network address without TLS, and no opt-in.
    #[error(
        "{addr} is not a loopback address, and fib-server speaks plaintext: anyone who reaches \
         it could take numbers. Listen on 127.0.0.1 (or ::1), or pass --insecure-plaintext to \
         serve it anyway"
    )]
    Plaintext {
        /// The address it bound.
        addr: SocketAddr,
    },
}

/// A fib-server, listening, with its store open.
pub struct FibService {
    server: Server,
    committer: Arc<Committer>,
}

impl FibService {
    /// Opens (or creates) the store in `data`, then listens on `listen` (`HOST:PORT`; port 0
    /// picks a free one). Only a loopback address unless `network` is `true`: the protocol is
    /// plaintext.
    ///
    /// # Errors
    /// [`ServeError`]: a bad data directory, an address that cannot be listened on.
    pub async fn start(listen: &str, data: &Path, network: bool) -> Result<FibService, ServeError> {
        let (store, sequence) = Store::open(data)?;
        tracing::info!(
            database = %store.path().display(),
            handed_out_before = sequence.index(),
            "store open"
        );
        let committer = Arc::new(Committer::start(store, sequence));
        let root = FibonacciRef::new(Numbers {
            committer: Arc::clone(&committer),
        });
        let refused = match Server::bind(listen, root).await {
            Ok(server) if network || server.local_addr().ip().is_loopback() => {
                return Ok(FibService { server, committer });
            }
            Ok(server) => ServeError::Plaintext {
                addr: server.local_addr(),
            },
            Err(source) => ServeError::Listen {
                addr: listen.to_owned(),
                source,
            },
        };
        committer.stop().await?;
        Err(refused)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `shutdown` resolves or saving fails, lets the calls in flight finish,
    /// and closes the store; returns what this run handed out.
    ///
    /// # Errors
    /// [`ServeError::Store`] when saving failed: the server stopped handing out numbers.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<CommitStats, ServeError> {
        let ended = self.committer.ended();
        self.server
            .run_until(async {
                tokio::select! {
                    () = shutdown => {}
                    () = ended => {}
                }
            })
            .await;
        self.committer.stop().await?;
        Ok(self.committer.stats())
    }
}
