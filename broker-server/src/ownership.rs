//! Which worker login owns which worker id: the table behind "a worker publishes only about
//! itself". No I/O; [`BrokerService`](crate::BrokerService) keeps one, shared by all the
//! [`BrokerSession`](crate::BrokerSession)s of its logins.
//!
//! # Rules
//!
//! - A worker login (an *identity*, its user name) may only name its workers after itself:
//!   `<user>` or `<user>/<anything>` (e.g. `worker-1/1`). So no login can even claim
//!   another's worker id, whoever added it first (an admin, the in-process API) and whatever
//!   happened since (a broker restart forgets ownership; names stay).
//! - A worker login owns a worker id from its first successful `Added` for it
//!   (by [`join`](crate::BrokerRef::join) or [`publish`](crate::BrokerRef::publish)). Only an
//!   `Added` can claim an id nobody owns; any update about an id another identity owns is
//!   [`Forbidden::NotYourWorker`].
//! - One identity owns at most [`DEFAULT_MAX_WORKERS_PER_IDENTITY`] ids (configurable with
//!   [`BrokerService::with_max_workers_per_identity`](crate::BrokerService::with_max_workers_per_identity));
//!   beyond it, [`Forbidden::TooManyWorkers`].
//! - Ownership is never released while the service lives, not even when the worker is
//!   removed or its connection drops: a worker that re-joins later finds its id still its
//!   own, and no other login can take the id over in the meantime (which is exactly the
//!   hijack this prevents). The table is bounded all the same: it grows only with identities
//!   that logged in — registered users — times the cap.
//! - Ids added by the trusted in-process API or by an admin are owned by nobody until a
//!   worker login's `Added` for them is applied.
//!
//! A claim is made before the update is applied and undone if the update is not applied
//! (stale, invalid, queue full): only applied `Added`s own ids. Between the two, another
//! identity's update about the same id is refused, never applied twice.

use std::collections::HashMap;
use std::sync::Arc;

use crate::forbidden::Forbidden;
use crate::queue::{Change, WorkerId, WorkerUpdate};

/// How many worker ids one worker login may own unless configured otherwise.
pub const DEFAULT_MAX_WORKERS_PER_IDENTITY: u32 = 4;

/// What [`Ownership::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The identity already owned the id.
    Owned,
    /// The id was nobody's and is the identity's now: [`Ownership::release`] it if the update
    /// is not applied.
    New,
}

/// Whether `worker` is named after `identity`: `<identity>` or `<identity>/...`.
pub(crate) fn named_after(identity: &str, worker: &WorkerId) -> bool {
    match worker.as_str().strip_prefix(identity) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The owners of worker ids, and how many each identity owns. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Ownership {
    owners: HashMap<WorkerId, Arc<str>>,
    owned: HashMap<Arc<str>, u32>,
    max_per_identity: u32,
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership {
            owners: HashMap::new(),
            owned: HashMap::new(),
            max_per_identity: DEFAULT_MAX_WORKERS_PER_IDENTITY,
        }
    }
}

impl Ownership {
    /// The most ids one identity may own.
    pub(crate) fn max_per_identity(&self) -> u32 {
        self.max_per_identity
    }

    /// Sets the most ids one identity may own. Ids owned already stay owned.
    pub(crate) fn set_max_per_identity(&mut self, max: u32) {
        self.max_per_identity = max;
    }

    /// Checks that `identity` may send `update`, claiming the worker id if it is nobody's and
    /// the update is an `Added`.
    pub(crate) fn claim(
        &mut self,
        identity: &Arc<str>,
        update: &WorkerUpdate,
    ) -> Result<Claim, Forbidden> {
        let worker = &update.worker;
        if !named_after(identity, worker) {
            return Err(Forbidden::NotYourWorker {
                worker: worker.clone(),
            });
        }
        match self.owners.get(worker) {
            Some(owner) if owner == identity => return Ok(Claim::Owned),
            Some(_) => {
                return Err(Forbidden::NotYourWorker {
                    worker: worker.clone(),
                });
            }
            None => {}
        }
        if !matches!(update.change, Change::Added { .. }) {
            return Err(Forbidden::NotYourWorker {
                worker: worker.clone(),
            });
        }
        let owned = self.owned.entry(Arc::clone(identity)).or_insert(0);
        if *owned >= self.max_per_identity {
            let limit = self.max_per_identity;
            if *owned == 0 {
                // Nothing owned (a cap of 0): keep no entry for it.
                self.owned.remove(identity);
            }
            return Err(Forbidden::TooManyWorkers {
                worker: worker.clone(),
                limit,
            });
        }
        *owned += 1;
        self.owners.insert(worker.clone(), Arc::clone(identity));
        Ok(Claim::New)
    }

    /// Undoes a [`Claim::New`] of `worker` by `identity` whose update was not applied.
    pub(crate) fn release(&mut self, identity: &Arc<str>, worker: &WorkerId) {
        if self.owners.get(worker) != Some(identity) {
            return;
        }
        self.owners.remove(worker);
        if let Some(owned) = self.owned.get_mut(identity) {
            *owned -= 1;
            if *owned == 0 {
                self.owned.remove(identity);
            }
        }
    }

    /// The identity that owns `worker`, if any.
    pub(crate) fn owner(&self, worker: &WorkerId) -> Option<&str> {
        self.owners.get(worker).map(|owner| &**owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(worker: &str, change: Change) -> WorkerUpdate {
        WorkerUpdate {
            worker: WorkerId::from(worker),
            seq: 1,
            change,
        }
    }

    fn added(worker: &str) -> WorkerUpdate {
        update(
            worker,
            Change::Added {
                addr: "a:1".into(),
                capacity: 1,
                load: 0,
            },
        )
    }

    #[test]
    fn the_first_added_claims_and_others_are_refused() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut table = Ownership::default();
        let load = Change::Load {
            capacity: 1,
            load: 0,
        };
        assert!(matches!(
            table.claim(&a, &update("a/w", load.clone())),
            Err(Forbidden::NotYourWorker { .. })
        ));
        assert_eq!(table.claim(&a, &added("a/w")), Ok(Claim::New));
        assert_eq!(table.claim(&a, &update("a/w", load)), Ok(Claim::Owned));
        assert_eq!(
            table.claim(&a, &update("a/w", Change::Removed)),
            Ok(Claim::Owned)
        );
        assert!(matches!(
            table.claim(&b, &added("a/w")),
            Err(Forbidden::NotYourWorker { .. })
        ));
        assert_eq!(table.owner(&WorkerId::from("a/w")), Some("a"));
        // b's own names are b's; a name that merely starts with b is not.
        assert_eq!(table.claim(&b, &added("b")), Ok(Claim::New));
        assert_eq!(table.claim(&b, &added("b/2")), Ok(Claim::New));
        for foreign in ["bb", "bb/1", "a", "x/b", ""] {
            assert!(matches!(
                table.claim(&b, &added(foreign)),
                Err(Forbidden::NotYourWorker { .. })
            ));
        }
    }

    #[test]
    fn the_cap_counts_claims_and_release_gives_back() {
        let a: Arc<str> = "a".into();
        let mut table = Ownership::default();
        table.set_max_per_identity(2);
        assert_eq!(table.max_per_identity(), 2);
        assert_eq!(table.claim(&a, &added("a/w1")), Ok(Claim::New));
        assert_eq!(table.claim(&a, &added("a/w2")), Ok(Claim::New));
        assert_eq!(
            table.claim(&a, &added("a/w3")),
            Err(Forbidden::TooManyWorkers {
                worker: WorkerId::from("a/w3"),
                limit: 2
            })
        );
        table.release(&a, &WorkerId::from("a/w2"));
        assert_eq!(table.owner(&WorkerId::from("a/w2")), None);
        assert_eq!(table.claim(&a, &added("a/w3")), Ok(Claim::New));
        // Releasing what another identity owns does nothing.
        table.release(&"b".into(), &WorkerId::from("a/w3"));
        assert_eq!(table.owner(&WorkerId::from("a/w3")), Some("a"));
        // A cap of 0 keeps no count for the refused identity.
        table.set_max_per_identity(0);
        assert!(table.claim(&"c".into(), &added("c/w9")).is_err());
        assert!(!table.owned.contains_key("c"));
    }
}
