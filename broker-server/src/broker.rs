//! The broker's remote interface, [`Broker`]: what front ends, workers and schedulers call.
//!
//! This module is the contract only. [`BrokerService`](crate::service::BrokerService) is the
//! implementation a broker serves; a client reaches it through the generated [`BrokerRef`]
//! proxy:
//!
//! ```no_run
//! use broker_server::{BrokerRef, queue::Change, queue::WorkerId, queue::WorkerUpdate};
//! use rpc_core::Client;
//!
//! # async fn f() -> Result<(), rpc_core::CallError> {
//! let client = Client::connect("127.0.0.1:8990").await?;
//! let broker: BrokerRef = client.root().await?;
//!
//! // A worker: joins over its own connection, and stays queued while it is open.
//! let update = WorkerUpdate {
//!     worker: WorkerId::from("w1"),
//!     seq: 1,
//!     change: Change::Added { addr: "127.0.0.1:8992".into(), capacity: 4, load: 0 },
//! };
//! broker.join(update).await?;
//!
//! // A front end: where to send the next piece of work.
//! if let Some(assignment) = broker.next_worker().await? {
//!     println!("send it to {} at {}", assignment.worker, assignment.addr);
//! }
//! # Ok(()) }
//! ```

use rpc_core::remote;

use crate::queue::{Applied, Assignment, WorkerState, WorkerUpdate};

/// The root object of a broker.
///
/// - A **front end** asks for [`next_worker`](BrokerRef::next_worker): the head of the queue
///   of most able workers, counted against its spare capacity so that back-to-back requests
///   spread.
/// - A **worker** [`join`](BrokerRef::join)s over its own connection; it leaves the queue the
///   moment that connection drops.
/// - A **scheduler** (or the worker itself) [`publish`](BrokerRef::publish)es updates: worker
///   added, capacity and load changed, worker removed. Each carries a sequence number; one not
///   newer than the last applied for that worker is ignored.
#[remote]
pub trait Broker {
    /// The most able worker (id and address), or `None` when no worker is queued.
    async fn remote_next_worker(&self) -> Option<Assignment>;

    /// Applies a scheduler update about a worker.
    ///
    /// An applied [`Change::Removed`](crate::queue::Change::Removed) also unties a joined
    /// worker from its connection: if the scheduler adds it back later, the drop of that
    /// connection no longer removes it. A `Removed` for a worker the broker does not know is
    /// [`Applied::UnknownWorker`], and records nothing; a new worker is [`Applied::Full`] when
    /// the broker tracks as many as it may (see [`remote_join`](Self::remote_join)).
    async fn remote_publish(&self, update: WorkerUpdate) -> Applied;

    /// Applies `update` (normally [`Change::Added`](crate::queue::Change::Added)) and ties the
    /// worker to the calling connection: when it drops, the worker leaves the queue at once.
    ///
    /// A worker that joins again (over this or another connection) is tied to the newest
    /// connection only: the drop of an older one no longer removes it. After its connection
    /// dropped, a worker re-joins with a `seq` higher than any update applied for it before
    /// (a drop keeps its last `seq` as a tombstone); an older one is [`Applied::Stale`].
    ///
    /// A new worker is refused with [`Applied::Full`] when the broker already tracks as many
    /// workers as it may (`broker-server --max-workers`), all of them queued.
    async fn remote_join(&self, update: WorkerUpdate) -> Applied;

    /// Every queued worker with its state, most able first.
    async fn remote_workers(&self) -> Vec<WorkerState>;
}
