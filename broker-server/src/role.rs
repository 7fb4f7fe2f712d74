//! Who may call what: the [`Role`] a login has at the broker, the [`BrokerCall`]s of the
//! [`Broker`](crate::Broker) trait, and the table between them ([`Role::may`]).
//!
//! | call | front end | worker | admin |
//! |---|---|---|---|
//! | [`next_worker`](crate::BrokerRef::next_worker) | yes | no | yes |
//! | [`workers`](crate::BrokerRef::workers) | yes | no | yes |
//! | [`join`](crate::BrokerRef::join) | no | its own workers | any worker |
//! | [`publish`](crate::BrokerRef::publish) | no | its own workers | any worker |
//!
//! "Its own workers" is enforced by [`BrokerSession`](crate::BrokerSession), which knows the
//! login's identity; this table only says which calls a role may make at all.
//!
//! ```
//! use broker_server::role::{BrokerCall, Role};
//!
//! let role: Role = "front-end".parse().unwrap();
//! assert_eq!(role, Role::FrontEnd);
//! assert!(role.may(BrokerCall::NextWorker));
//! assert!(!role.may(BrokerCall::Publish));
//! assert_eq!(Role::Admin.to_string(), "admin");
//! assert!("root".parse::<Role>().unwrap_err().to_string().contains("front-end, worker, admin"));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a login is trusted to do at the broker. See the [module docs](self) for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Asks for workers: [`next_worker`](crate::BrokerRef::next_worker) and
    /// [`workers`](crate::BrokerRef::workers), nothing else.
    FrontEnd,
    /// Joins and publishes updates about the workers it owns (the scheduler role of the
    /// design): see [`BrokerSession`](crate::BrokerSession) for what owning means.
    Worker,
    /// Everything: asks for workers, and joins, publishes and removes any worker.
    Admin,
}

impl Role {
    /// Every role, in the order the names are listed in messages.
    pub const ALL: [Role; 3] = [Role::FrontEnd, Role::Worker, Role::Admin];

    /// The role's name: `front-end`, `worker` or `admin` (what [`FromStr`] reads).
    pub fn name(self) -> &'static str {
        match self {
            Role::FrontEnd => "front-end",
            Role::Worker => "worker",
            Role::Admin => "admin",
        }
    }

    /// The role in a sentence: "a front end", "a worker", "an admin".
    pub fn in_words(self) -> &'static str {
        match self {
            Role::FrontEnd => "a front end",
            Role::Worker => "a worker",
            Role::Admin => "an admin",
        }
    }

    /// Whether the role may make `call` at all. A worker may [`BrokerCall::Join`] and
    /// [`BrokerCall::Publish`] only about the workers it owns, which
    /// [`BrokerSession`](crate::BrokerSession) checks besides.
    pub fn may(self, call: BrokerCall) -> bool {
        match self {
            Role::FrontEnd => matches!(call, BrokerCall::NextWorker | BrokerCall::Workers),
            Role::Worker => matches!(call, BrokerCall::Join | BrokerCall::Publish),
            Role::Admin => true,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A role name that is none of `front-end`, `worker`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {given:?}: the roles are {}", role_names())]
pub struct UnknownRole {
    /// The name that was given.
    pub given: String,
}

/// "front-end, worker, admin".
fn role_names() -> String {
    Role::ALL.map(Role::name).join(", ")
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| UnknownRole {
                given: name.to_owned(),
            })
    }
}

/// One of the calls of the [`Broker`](crate::Broker) trait, as named in a
/// [`Forbidden`](crate::Forbidden) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BrokerCall {
    /// [`next_worker`](crate::BrokerRef::next_worker).
    NextWorker,
    /// [`workers`](crate::BrokerRef::workers).
    Workers,
    /// [`join`](crate::BrokerRef::join).
    Join,
    /// [`publish`](crate::BrokerRef::publish).
    Publish,
}

impl BrokerCall {
    /// What the call does, after "may not": "ask for a worker", "publish worker updates"...
    pub fn in_words(self) -> &'static str {
        match self {
            BrokerCall::NextWorker => "ask for a worker",
            BrokerCall::Workers => "list the workers",
            BrokerCall::Join => "join workers",
            BrokerCall::Publish => "publish worker updates",
        }
    }

    /// The roles that may make the call, in words: "a worker or an admin".
    pub fn allowed_in_words(self) -> String {
        let allowed: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|role| role.may(self))
            .map(Role::in_words)
            .collect();
        match allowed.split_last() {
            None => "nobody".to_owned(),
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

impl fmt::Display for BrokerCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerCall::NextWorker => "next_worker",
            BrokerCall::Workers => "workers",
            BrokerCall::Join => "join",
            BrokerCall::Publish => "publish",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>(), Ok(role));
        }
        let error = "Admin".parse::<Role>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown role \"Admin\": the roles are front-end, worker, admin"
        );
    }

    #[test]
    fn the_table() {
        use BrokerCall::*;
        let table = [
            (Role::FrontEnd, [true, true, false, false]),
            (Role::Worker, [false, false, true, true]),
            (Role::Admin, [true, true, true, true]),
        ];
        for (role, rights) in table {
            for (call, allowed) in [NextWorker, Workers, Join, Publish].into_iter().zip(rights) {
                assert_eq!(role.may(call), allowed, "{role} {call}");
            }
        }
        assert_eq!(Publish.allowed_in_words(), "a worker or an admin");
        assert_eq!(NextWorker.allowed_in_words(), "a front end or an admin");
    }
}
