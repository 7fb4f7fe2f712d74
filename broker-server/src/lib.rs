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
//! - [`broker`]: the [`Broker`] remote trait, the contract clients program against;
//! - [`service`]: [`BrokerService`], the implementation: the queue behind a mutex, and the
//!   ties between workers and their connections.

pub mod broker;
pub mod queue;
pub mod service;

pub use broker::{Broker, BrokerRef};
pub use service::{BrokerService, WorkerEvent};
