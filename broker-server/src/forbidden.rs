//! [`Forbidden`]: the answer of a [`Broker`](crate::Broker) call that the caller's login may
//! not make, saying what was refused and why, in a user's words.
//!
//! It travels as the error of every broker call's `Result`: a client gets
//! `Result<Result<T, Forbidden>, CallError>`. A `Forbidden` call changed nothing at the
//! broker, and making it again will not help: the caller needs another login.

use serde::{Deserialize, Serialize};

use crate::queue::WorkerId;
use crate::role::{BrokerCall, Role};

/// A broker call refused for the caller's login. Nothing changed at the broker.
///
/// ```
/// use broker_server::Forbidden;
/// use broker_server::role::{BrokerCall, Role};
///
/// let refused = Forbidden::Role { role: Role::FrontEnd, call: BrokerCall::Publish };
/// assert_eq!(
///     refused.to_string(),
///     "forbidden: a front end may not publish worker updates; log in as a worker or an admin"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// The caller's role may not make this call at all (see [`Role::may`]).
    #[error(
        "forbidden: {} may not {}; log in as {}",
        role.in_words(),
        call.in_words(),
        call.allowed_in_words()
    )]
    Role {
        /// The caller's role.
        role: Role,
        /// The call it made.
        call: BrokerCall,
    },
    /// A worker login's update about a worker id not named after it (its user name, or the
    /// user name, `/` and anything), or that another login owns (or, for an update other
    /// than `Added`, that it does not own).
    #[error(
        "forbidden: worker {worker} is not yours: a worker login may join and publish only \
         about worker ids named after it (`<user>` or `<user>/<anything>`) that it added \
         itself; log in as the worker's own login or as an admin"
    )]
    NotYourWorker {
        /// The worker id of the update.
        worker: WorkerId,
    },
    /// A worker login's `Added` for a new worker id, when it already owns as many as one
    /// login may.
    #[error(
        "forbidden: cannot add worker {worker}: this login already owns {limit} workers, the \
         most one worker login may; use another login for more workers, or ask the broker's \
         operator to raise the limit"
    )]
    TooManyWorkers {
        /// The worker id of the update.
        worker: WorkerId,
        /// The most worker ids one login may own.
        limit: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_why() {
        let not_yours = Forbidden::NotYourWorker {
            worker: WorkerId::from("w1"),
        };
        assert!(
            not_yours
                .to_string()
                .starts_with("forbidden: worker w1 is not yours")
        );
        let too_many = Forbidden::TooManyWorkers {
            worker: WorkerId::from("w5"),
            limit: 4,
        };
        assert!(too_many.to_string().contains("already owns 4 workers"));
        let admin_only = Forbidden::Role {
            role: Role::Worker,
            call: BrokerCall::Workers,
        };
        assert_eq!(
            admin_only.to_string(),
            "forbidden: a worker may not list the workers; log in as a front end or an admin"
        );
    }
}
