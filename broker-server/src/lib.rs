//! # broker-server: which worker should take the next piece of work?
//!
//! The broker sits between the front ends of a distributed job and its workers. Workers
//! [`join`](BrokerRef::join) it over their own connection; a scheduler (or the workers
//! themselves) [`publish`](BrokerRef::publish)es their capacity and load; front ends ask for
//! the [`next_worker`](BrokerRef::next_worker) and get the most able one. A worker whose
//! connection drops leaves the queue at once.
//!
//! The pieces, each in its module:
//! - [`queue`]: the worker queue, no I/O — what "most able" means, sequence numbers and
//!   tombstones, O(log n) operations;
//! - [`broker`]: the [`Broker`] remote trait, the contract clients program against, and
//!   [`WorkersPage`];
//! - [`service`]: [`BrokerService`], the fully trusted implementation (for code in the same
//!   program): the queue behind a mutex, and the ties between workers and their connections;
//! - [`role`], [`forbidden`], [`ownership`] and [`session`]: the broker trusts roles, not
//!   peers. A login gets a [`BrokerSession`] with its [`Role`] (front end, worker, admin),
//!   which answers [`Forbidden`] to what the role may not do, and lets a worker login publish
//!   only about the workers it owns;
//! - [`access`] and [`data`]: who may log in ([`Users`]: a role and an argon2 password hash
//!   each), the broker's TLS identity and `pbrs://` URL ([`Access`]), kept in a data
//!   directory ([`DataDir`]); and what a worker or front end connects with
//!   ([`BrokerCredentials`], from a file or the environment);
//! - [`address`]: `host:port` as people type it, on command lines and in credentials, with
//!   messages that say what is missing;
//! - [`activity`] and [`status`]: what the broker has seen each worker do (hand-outs in
//!   all, last update, busy or not) and the hand-out rate, read as a [`status::Status`];
//!   [`telemetry`]: the same as `metrics` gauges, counters and histograms;
//! - [`http`]: the HTTP side ([`HttpSide`]): a live status page, `/status.json`,
//!   Prometheus `/metrics` and `/healthz`;
//! - [`server`]: [`run`] a broker on a listener until a shutdown future resolves, or
//!   [`spawn`] one in the background of a program. Its root object is a login object
//!   ([`rpc_core::login`]): before login a peer reaches nothing else.
//!
//! The `broker-server` binary is [`run`] behind a command line: `broker-server --listen
//! 127.0.0.1:8990 --data DIR` serves TLS with the identity and users kept in `DIR`, and
//! `broker-server add-user NAME --role worker --data DIR` adds a user (see
//! `broker-server --help`).
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use broker_server::queue::{Change, WorkerId, WorkerUpdate};
//! use broker_server::{Access, BrokerCredentials, Role, Users};
//! use rpc_core::tls::Identity;
//!
//! let users = Users::new();
//! users.add("w1", Role::Worker, "w1's password")?;
//! users.add("fe", Role::FrontEnd, "fe's password")?;
//! let identity = Identity::generate(&["localhost"])?;
//! let running = broker_server::spawn("127.0.0.1:0", Access::tls(users, identity)).await?;
//! // Over TLS, the broker is reached by its URL: its address, fingerprint and a secret.
//! let url = running.location();
//!
//! // A worker logs in and joins over its own connection...
//! let worker = BrokerCredentials::new(&url, "w1", "w1's password").connect().await?;
//! let update = WorkerUpdate {
//!     worker: WorkerId::from("w1"),
//!     seq: 1,
//!     change: Change::Added { addr: "127.0.0.1:8992".into(), capacity: 2, load: 0 },
//! };
//! worker.join(update).await??;
//!
//! // ...and a front end asks where to send work.
//! let front_end = BrokerCredentials::new(&url, "fe", "fe's password").connect().await?;
//! let next = front_end.next_worker().await??.expect("w1 is queued");
//! assert_eq!(next.addr, "127.0.0.1:8992");
//!
//! // When the worker's connection drops, it leaves the queue.
//! drop(worker);
//! # let mut left = running.service().subscribe();
//! # while !running.service().is_empty() { left.recv().await?; }
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod access;
pub mod activity;
pub mod address;
pub mod broker;
pub mod data;
mod files;
pub mod forbidden;
pub mod http;
pub mod ownership;
pub mod queue;
pub mod role;
pub mod server;
pub mod service;
pub mod session;
pub mod status;
pub mod telemetry;

pub use access::{Access, BrokerCredentials, BrokerRealm, Users};
pub use broker::{Broker, BrokerRef, MAX_PAGE, WorkersPage};
pub use data::DataDir;
pub use forbidden::Forbidden;
pub use http::HttpSide;
pub use role::Role;
pub use server::{
    RunningBroker, bind, run, run_server, run_server_with_http, run_service, serve,
    shutdown_signal, spawn, spawn_on, spawn_with_http,
};
pub use service::{BrokerService, WorkerEvent};
pub use session::BrokerSession;
