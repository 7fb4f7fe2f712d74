//! The broker's remote interface, [`Broker`]: what front ends, workers and schedulers call.
//!
//! The service behind it is built in its own module; this file fixes the contract.

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
    async fn remote_publish(&self, update: WorkerUpdate) -> Applied;

    /// Applies `update` (normally [`Change::Added`](crate::queue::Change::Added)) and ties the
    /// worker to the calling connection: when it drops, the worker leaves the queue at once.
    async fn remote_join(&self, update: WorkerUpdate) -> Applied;

    /// Every queued worker with its state, most able first.
    async fn remote_workers(&self) -> Vec<WorkerState>;
}
