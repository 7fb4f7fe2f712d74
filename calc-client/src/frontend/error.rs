//! [`JobError`]: why a job failed.

use std::ops::Range;

use broker_server::Forbidden;
use rpc_core::CallError;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Every worker is lost (or the broker offers none), with chunks still to compute.
    #[error("no worker left: {why}; {missing} of {chunks} chunks not computed{details}")]
    NoWorkerLeft {
        /// What happened.
        why: String,
        /// Chunks without an answer.
        missing: usize,
        /// Chunks in the job.
        chunks: usize,
        /// The lost workers and why each was lost (empty, or starting with "; ").
        details: String,
    },
    /// The broker could not be reached, refused the login, or stopped answering.
    #[error("broker {addr}: {}", crate::explain::call_failure(source))]
    Broker {
        /// The broker's address (`host:port`).
        addr: String,
        /// What went wrong.
        source: CallError,
    },
    /// The broker's URL names something else: a worker, say. Not worth retrying: the
    /// credentials need the broker's URL.
    #[error("{addr} is {what}")]
    NotABroker {
        /// The address the URL names (`host:port`).
        addr: String,
        /// What it is instead, and what to give ("a calculator worker, not a broker: ...",
        /// from [`crate::explain::wrong_server`]).
        what: String,
    },
    /// The broker refused a call: the front end's login may not ask for workers. Not worth
    /// retrying: it needs another login.
    #[error("broker {addr} refused the front end: {source}")]
    Forbidden {
        /// The broker's address (`host:port`).
        addr: String,
        /// What was refused, and why.
        source: Forbidden,
    },
    /// One chunk failed too many times.
    #[error("chunk {range:?} failed {attempts} times; the last time, on {worker}: {error}")]
    ChunkFailed {
        /// The chunk.
        range: Range<u64>,
        /// Times it failed.
        attempts: u32,
        /// The worker of the last failure.
        worker: String,
        /// The last failure.
        error: CallError,
    },
    /// A worker's answer differs from the local computation of the same chunk.
    #[error(
        "wrong answer: worker {worker} counted {remote} primes in {range:?}, there are {local}"
    )]
    Mismatch {
        /// The chunk.
        range: Range<u64>,
        /// The worker's address.
        worker: String,
        /// What it answered.
        remote: u64,
        /// What the front end computed.
        local: u64,
    },
    /// The total differs from the known value of π(limit).
    #[error("wrong total: {total} primes below {limit}, but π({limit}) = {known}")]
    WrongTotal {
        /// The job's limit.
        limit: u64,
        /// The total from the workers' answers.
        total: u64,
        /// The known value.
        known: u64,
    },
    /// The job or the worker list makes no sense.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_broker_is_said_without_connect_again() {
        let e = JobError::Broker {
            addr: "127.0.0.1:8990".into(),
            source: CallError::Disconnected {
                reason: "the peer closed the connection".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "broker 127.0.0.1:8990: connection lost: the peer closed the connection"
        );
    }
}
