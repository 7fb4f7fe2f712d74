//! [`BrokerSession`]: the [`Broker`] one login gets, allowing what its [`Role`] may do.
//!
//! A server that checks logins hands each one a `BrokerRef::new(BrokerSession::new(service,
//! role, user))` as its avatar; every session of a broker shares one [`BrokerService`]. What
//! each role may do:
//!
//! - **front end**: [`next_worker`](BrokerRef::next_worker) and
//!   [`workers`](BrokerRef::workers); everything else is [`Forbidden::Role`].
//! - **worker**: [`join`](BrokerRef::join) and [`publish`](BrokerRef::publish), only about
//!   worker ids it owns (see [ownership](crate::ownership): an id is owned from the login's
//!   first applied `Added` for it, at most a few ids per login, and never given up while the
//!   service lives). Another login's worker is [`Forbidden::NotYourWorker`]: nobody can
//!   publish a `Removed`, or an `Added` with a huge `seq`, about a worker that is not theirs.
//!   Asking for workers is [`Forbidden::Role`].
//! - **admin**: everything, about any worker: a `Removed` through
//!   [`publish`](BrokerRef::publish) is the admin's way to take any worker out of the queue,
//!   and [`join`](BrokerRef::join) queues a worker tied to the admin's own connection (as any
//!   join is), for an operator who stands in for a worker. An admin claims no ownership.
//!
//! A [`join`](BrokerRef::join) through a session ties the worker to the calling connection,
//! as [`BrokerService::join`] with [`Peer::current`] does. A forbidden call changes nothing.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use broker_server::queue::{Change, WorkerId, WorkerUpdate};
//! use broker_server::{BrokerRef, BrokerService, BrokerSession, Forbidden, Role};
//!
//! let service = BrokerService::new();
//! let front_end = BrokerRef::new(BrokerSession::new(service.clone(), Role::FrontEnd, "alice"));
//! let removal = WorkerUpdate { worker: WorkerId::from("w1"), seq: 9, change: Change::Removed };
//! let refused = front_end.publish(removal).await.unwrap().unwrap_err();
//! assert!(matches!(refused, Forbidden::Role { .. }));
//! assert_eq!(front_end.next_worker().await.unwrap(), Ok(None));
//! # }
//! ```

use std::sync::Arc;

use rpc_core::Peer;

#[cfg(doc)]
use crate::broker::BrokerRef;
use crate::broker::{Broker, WorkersPage};
use crate::forbidden::Forbidden;
use crate::ownership::Claim;
use crate::queue::{Applied, Assignment, WorkerUpdate};
use crate::role::{BrokerCall, Role};
use crate::service::BrokerService;

/// The broker as one login sees it: a [`BrokerService`] seen through a [`Role`] and the
/// login's identity. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct BrokerSession {
    service: BrokerService,
    role: Role,
    identity: Arc<str>,
}

impl BrokerSession {
    /// The session of the login `identity` (its user name), with `role`, on `service`.
    pub fn new(service: BrokerService, role: Role, identity: impl Into<String>) -> Self {
        BrokerSession {
            service,
            role,
            identity: identity.into().into(),
        }
    }

    /// The login's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The login's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `Ok` if the role may make `call` at all.
    fn allow(&self, call: BrokerCall) -> Result<(), Forbidden> {
        if self.role.may(call) {
            Ok(())
        } else {
            tracing::info!(identity = %self.identity, role = %self.role, %call, "call forbidden");
            Err(Forbidden::Role {
                role: self.role,
                call,
            })
        }
    }

    /// Applies `update` with `apply` if the login may send it: an admin always, a worker
    /// about the ids it owns or can claim (see [ownership](crate::ownership)).
    fn apply(
        &self,
        call: BrokerCall,
        update: WorkerUpdate,
        apply: impl FnOnce(WorkerUpdate) -> Applied,
    ) -> Result<Applied, Forbidden> {
        self.allow(call)?;
        if self.role == Role::Admin {
            return Ok(apply(update));
        }
        let worker = update.worker.clone();
        let claim = self.service.ownership().claim(&self.identity, &update);
        let claim = claim.inspect_err(|refused| {
            tracing::info!(identity = %self.identity, %worker, %call, "update forbidden: {refused}");
        })?;
        let applied = apply(update);
        if claim == Claim::New {
            if matches!(applied, Applied::Added | Applied::Replaced) {
                tracing::info!(identity = %self.identity, %worker, "worker id owned");
            } else {
                self.service.ownership().release(&self.identity, &worker);
            }
        }
        Ok(applied)
    }
}

impl Broker for BrokerSession {
    async fn remote_next_worker(&self) -> Result<Option<Assignment>, Forbidden> {
        self.allow(BrokerCall::NextWorker)?;
        Ok(self.service.next_worker())
    }

    async fn remote_publish(&self, update: WorkerUpdate) -> Result<Applied, Forbidden> {
        self.apply(BrokerCall::Publish, update, |update| {
            self.service.publish(update)
        })
    }

    async fn remote_join(&self, update: WorkerUpdate) -> Result<Applied, Forbidden> {
        self.apply(BrokerCall::Join, update, |update| {
            self.service.join(update, Peer::current().as_ref())
        })
    }

    async fn remote_workers(&self, start: u64, limit: u32) -> Result<WorkersPage, Forbidden> {
        self.allow(BrokerCall::Workers)?;
        Ok(self.service.workers_page(start, limit))
    }
}
