//! # rpc-core: remote objects for Rust, the Perspective Broker way
//!
//! Put [`remote`] on a trait, implement it with plain `async fn`s, make the implementation
//! the root object of a [`Server`], and call it from another process through the generated
//! `<Trait>Ref` proxy, whose methods return futures:
//!
//! ```
//! use rpc_core::{remote, Client, Server};
//!
//! #[remote]
//! pub trait Calculator {
//!     /// Adds `a` and `b`; also says which worker did it.
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32);
//! }
//!
//! struct Calc { id: u32 }
//!
//! impl Calculator for Calc {
//!     async fn remote_calculate(&self, a: i64, b: i64) -> (i64, u32) { (a + b, self.id) }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc { id: 7 })).await?;
//! let addr = server.local_addr();
//! tokio::spawn(server.run());
//!
//! let client = Client::connect(addr).await?;
//! let calc: CalculatorRef = client.root().await?;
//! assert_eq!(calc.calculate(42, 47).await?, (89, 7));
//! # Ok(()) }
//! ```
//!
//! Only methods named `remote_*` are reachable from the network; the proxy drops the prefix.
//! Many calls may be in flight on one connection; answers arrive in any order. Errors are
//! [`CallError`]s.
//!
//! Objects also travel *by reference*: a `<Trait>Ref` can be an argument or a return value,
//! both ways. A local object passed over a connection is exported on it and the peer calls it
//! back; a reference handed back to its owner arrives as the original object. A `<Trait>Ref`
//! made with `new` calls its object directly. [`Peer`] tells when a connection is lost;
//! dropping a call's future cancels it at the callee; [`ObjectRef::with_timeout`] sets a
//! deadline that travels with the call; [`blocking::Client`] serves programs without a
//! runtime.
//!
//! Everything a peer can make this side hold is bounded (see [`Config`]): frame length, decode
//! bytes and nesting depth, incoming calls in flight, bytes queued for the peer, objects
//! exported, time for a frame to arrive, and, over a whole [`Server`], connections and bytes
//! held. Past a bound a call gets a clear error answer, or the one connection closes with one
//! warning naming the peer; a panic anywhere closes one connection at most.
//!
//! **On a real network**, use TLS ([`tls`]): a server presents an identity (PEM files, or a
//! self-signed one generated once and kept in a directory) and is named by its SHA-256
//! fingerprint; a client pins that fingerprint or checks CA roots
//! ([`Client::connect_tls`]); mutual TLS is an option. [`Server::register`] gives an object a
//! sturdy URL, `pbrs://<fingerprint>@<host>:<port>/<secret>`, and [`Client::connect_url`]
//! reaches it: the URL is the capability. [`login`] puts objects behind a password (argon2):
//! a per-user avatar, a mind to call back, a logout hook, and [`Peer::caller`] to tell who
//! calls.
//!
//! ```
//! use rpc_core::tls::{ClientTls, Identity, ServerTls};
//! # use rpc_core::{remote, Client, Server};
//! # #[remote] pub trait Calculator { async fn remote_calculate(&self, a: i64, b: i64) -> i64; }
//! # struct Calc; impl Calculator for Calc { async fn remote_calculate(&self, a: i64, b: i64) -> i64 { a + b } }
//! # #[tokio::main] async fn main() -> Result<(), rpc_core::CallError> {
//! let identity = Identity::generate(&["localhost"])?; // or Identity::load_or_generate(dir, ..)
//! let fingerprint = identity.fingerprint();
//! let server = Server::bind("127.0.0.1:0", CalculatorRef::new(Calc)).await?
//!     .with_tls(ServerTls::new(identity))?;
//! let url = server.register(CalculatorRef::new(Calc))?; // pbrs://<fingerprint>@.../<secret>
//! let addr = server.local_addr().to_string();
//! tokio::spawn(server.run());
//!
//! let calc: CalculatorRef = Client::connect_url(&url.to_string()).await?;
//! assert_eq!(calc.calculate(1, 2).await?, 3);
//! let pinned = Client::connect_tls(&addr, &ClientTls::pinned(fingerprint)).await?;
//! assert_eq!(pinned.root::<CalculatorRef>().await?.calculate(2, 2).await?, 4);
//! # Ok(()) }
//! ```
//!
//! The modules are layers, each using only those before it: the leaves (`error`, `config`,
//! [`protocol`], `codec`: bincode, framing and the depth limit) → `io` (the outbox that
//! batches writes, the frame reader with its timer and budget, the keepalive clock) →
//! `dispatch` (running and guarding handlers) → `conn` (lifecycle, outgoing and incoming
//! calls, exports, imports, the reference context, the frame router, the handshake) → the API
//! (`call`, `object`, `peer`, `client`, `server`, [`blocking`], [`login`], sturdy URLs).
//! [`tls`] sits beside the leaves: the connection layer and the API both use it.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

extern crate self as rpc_core;

pub mod blocking;
mod call;
mod client;
mod codec;
mod config;
mod conn;
mod dispatch;
mod error;
mod io;
pub mod login;
mod object;
mod peer;
pub mod protocol;
mod server;
mod sturdy;
pub mod tls;

pub use call::CallFuture;
pub use client::Client;
pub use config::Config;
pub use error::{CallError, LoginError, RemoteError, RemoteErrorKind, TimeoutKind};
pub use object::{ObjectRef, RemoteRef};
pub use peer::{Caller, DisconnectHook, Peer};
pub use rpc_derive::remote;
pub use server::{Server, ServerStats, serve_connection};
pub use sturdy::SturdyUrl;

/// What the code generated by `#[remote]` uses. Not a public API: it may change at any time.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::{Answer, Args, Dispatch, HandlerFuture, no_such_method, respond};
    pub use crate::error::RemoteError;
    pub use crate::object::deserialize_ref;
    pub use serde;
}
