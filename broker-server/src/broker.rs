//! The broker's remote interface, [`Broker`]: what front ends, workers and schedulers call.
//!
//! This module is the contract only. [`BrokerService`](crate::BrokerService) is the
//! fully trusted implementation (code in the same program may do everything);
//! [`BrokerSession`](crate::BrokerSession) is the one a login gets, which allows what its
//! [`Role`](crate::Role) may do and answers [`Forbidden`] to the rest. A client reaches
//! either through the generated [`BrokerRef`] proxy:
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
//! // The outer `?` is the call (the connection); the inner `Result` is the broker's answer,
//! // `Err(Forbidden)` when this login may not join workers.
//! let applied = broker.join(update).await?;
//! println!("{applied:?}");
//!
//! // A front end: where to send the next piece of work.
//! if let Ok(Some(assignment)) = broker.next_worker().await? {
//!     println!("send it to {} at {}", assignment.worker, assignment.addr);
//! }
//! # Ok(()) }
//! ```

use rpc_core::remote;
use serde::{Deserialize, Serialize};

use crate::forbidden::Forbidden;
use crate::queue::{Applied, Assignment, WorkerState, WorkerUpdate};

/// The most workers one [`WorkersPage`] holds, whatever the caller asks for: with ids and
/// addresses of at most 256 bytes each, a page stays far below the 4 MiB frame limit.
pub const MAX_PAGE: u32 = 256;

/// One page of the queued workers, from [`workers`](BrokerRef::workers), with totals over
/// *all* queued workers, so that a caller sizing its work needs only the first page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersPage {
    /// The queue position of the first worker in `workers` (0 is the head).
    pub start: u64,
    /// At most [`MAX_PAGE`] queued workers from `start` on, most able first.
    pub workers: Vec<WorkerState>,
    /// How many workers are queued in all.
    pub total: u64,
    /// The sum of the capacities of all queued workers.
    pub total_capacity: u64,
}

impl WorkersPage {
    /// Whether no queued worker comes after this page (at the time it was read).
    pub fn is_last(&self) -> bool {
        self.start.saturating_add(self.workers.len() as u64) >= self.total
    }
}

/// The root object of a broker, or the avatar of a login to it.
///
/// - A **front end** asks for [`next_worker`](BrokerRef::next_worker): the head of the queue
///   of most able workers, counted against its spare capacity so that back-to-back requests
///   spread; and reads [`workers`](BrokerRef::workers), a page at a time.
/// - A **worker** [`join`](BrokerRef::join)s over its own connection; it leaves the queue the
///   moment that connection drops.
/// - A **scheduler** (or the worker itself) [`publish`](BrokerRef::publish)es updates: worker
///   added, capacity and load changed, worker removed. Each carries a sequence number; one not
///   newer than the last applied for that worker is ignored.
///
/// Every call answers `Err(`[`Forbidden`]`)` when the caller's login may not make it (see
/// [`role`](crate::role) for who may call what); a forbidden call changes nothing.
#[remote]
pub trait Broker {
    /// The most able worker (id and address), or `None` when no worker is queued.
    async fn remote_next_worker(&self) -> Result<Option<Assignment>, Forbidden>;

    /// Applies a scheduler update about a worker.
    ///
    /// An applied [`Change::Removed`](crate::queue::Change::Removed) also unties a joined
    /// worker from its connection: if the scheduler adds it back later, the drop of that
    /// connection no longer removes it. A `Removed` for a worker the broker does not know is
    /// [`Applied::UnknownWorker`], and records nothing; a new worker is [`Applied::Full`] when
    /// the broker tracks as many as it may (see [`remote_join`](Self::remote_join)).
    async fn remote_publish(&self, update: WorkerUpdate) -> Result<Applied, Forbidden>;

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
    async fn remote_join(&self, update: WorkerUpdate) -> Result<Applied, Forbidden>;

    /// The queued workers from queue position `start` on (0 is the head), most able first:
    /// at most `limit` of them, and never more than [`MAX_PAGE`]; with the number and total
    /// capacity of all queued workers.
    async fn remote_workers(&self, start: u64, limit: u32) -> Result<WorkersPage, Forbidden>;
}
