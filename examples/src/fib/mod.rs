//! A stateful pbrs service: the seed's persistent Fibonacci server, done so that no number is
//! ever handed out twice, across clean restarts, `kill -9` and power loss.
//!
//! Twisted's version pickled its application into a `.tap` file on a clean stop: a crash lost
//! everything, and could repeat numbers after a restart. Here:
//!
//! - [`sequence`]: the numbers, 1, 2, 3, 5, 8, ..., in arbitrary precision;
//! - [`store`]: where they stand, in an embedded ACID database (redb) in the data directory,
//!   with a format marker checked at every start: bad state is an error, never a guess;
//! - [`committer`]: one thread owns the store; it saves each batch of requests in one durable
//!   transaction (group commit) *before* it answers any of them;
//! - [`service`]: the [`Fibonacci`](service::Fibonacci) remote object and the server;
//! - [`client`]: taking numbers through a reconnecting client, across server restarts;
//! - [`cli`]: what the `fib-server` and `fib-client` binaries share.
//!
//! ```text
//! fib-server --listen 127.0.0.1:8994 --data fib-data   # prints: fib-server listening on ...
//! fib-client --server 127.0.0.1:8994 --count 10        # prints 10 numbers, one a line
//! ```

pub mod cli;
pub mod client;
pub mod committer;
pub mod sequence;
pub mod service;
pub mod store;

/// The address `fib-server` listens on, and `fib-client` calls, unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8994";
