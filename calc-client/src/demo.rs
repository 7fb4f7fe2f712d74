//! The whole demo in one process: a broker, workers joined to it, and a job run through it,
//! over the same secure path as separate processes on a network.
//!
//! [`Cluster`] starts a broker on a loopback port, over TLS with a freshly generated identity,
//! with a user for each worker and one for the front end, each with a random password; then
//! workers on loopback ports (TLS, each reached only by its `pbrs://` URL) that log in as
//! their users and join; and waits until the broker lists them all. Everything talks over
//! real TLS connections, exactly as separate processes would; only the process boundary is
//! missing. [`run`] is what `calc-client` does when given no workers and no broker: start a
//! cluster of three, run the job through the broker with the front end's credentials, shut
//! everything down. Nothing needs setting up, and no password leaves the process.

use std::time::Duration;

use broker_server::{Access, BrokerCredentials, BrokerService, Role, RunningBroker, Users};
use rpc_core::tls::Identity;
use rpc_core::{CallError, SturdyUrl};
use tokio::net::TcpListener;

use crate::frontend::{self, JobError, Options, Workers};
use crate::job::{Job, JobReport};
use crate::worker::{Worker, WorkerConfig};

/// Workers started by [`run`].
pub const DEMO_WORKERS: u32 = 3;

/// The user name of the front end in a [`Cluster`].
pub const FRONT_END_USER: &str = "front-end";

/// A broker and its workers, running in this process.
#[derive(Debug)]
pub struct Cluster {
    broker: RunningBroker,
    users: Users,
    front_end: BrokerCredentials,
    workers: Vec<Worker>,
}

/// Binds a free loopback port.
async fn bind_loopback() -> Result<TcpListener, CallError> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CallError::Io {
            context: "could not bind a loopback port".into(),
            source: e,
        })
}

impl Cluster {
    /// Starts a broker over TLS and `workers` workers (ids 1, 2, ...) of `capacity` slots
    /// each, logged in as users `worker-1`, `worker-2`, ...; and waits (at most 10 s) until
    /// every worker has joined the broker.
    pub async fn start(workers: u32, capacity: u32) -> Result<Cluster, CallError> {
        let users = Users::new();
        let front_end_password = SturdyUrl::new_secret()?;
        users.add(FRONT_END_USER, Role::FrontEnd, &front_end_password)?;
        let access = Access::tls(users.clone(), Identity::generate(&["localhost"])?);
        let broker = broker_server::spawn_on(bind_loopback().await?, BrokerService::new(), access)
            .map_err(|source| CallError::Io {
                context: "could not start the in-process broker".into(),
                source,
            })?;
        let front_end =
            BrokerCredentials::new(broker.location(), FRONT_END_USER, &front_end_password);
        let mut cluster = Cluster {
            broker,
            users,
            front_end,
            workers: Vec::new(),
        };
        for id in 1..=workers {
            let config = WorkerConfig::new(id)
                .capacity(capacity)
                .broker(cluster.new_user(&format!("worker-{id}"), Role::Worker)?);
            cluster
                .workers
                .push(Worker::start(bind_loopback().await?, config)?);
        }
        let joined = futures::future::join_all(cluster.workers.iter().map(Worker::joined));
        if tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .is_err()
        {
            return Err(CallError::Io {
                context: "the workers did not join the in-process broker within 10 s".into(),
                source: std::io::ErrorKind::TimedOut.into(),
            });
        }
        Ok(cluster)
    }

    /// Adds (or replaces) the broker user `name` with `role` and a new random password, and
    /// returns its credentials: e.g. for a worker started later, or a test's own login.
    pub fn new_user(&self, name: &str, role: Role) -> Result<BrokerCredentials, CallError> {
        let password = SturdyUrl::new_secret()?;
        self.users.add(name, role, &password)?;
        Ok(BrokerCredentials::new(
            self.broker.location(),
            name,
            &password,
        ))
    }

    /// The front end's credentials (user [`FRONT_END_USER`]).
    pub fn front_end(&self) -> &BrokerCredentials {
        &self.front_end
    }

    /// The running broker: its URL, and its service to look at the queue in process.
    pub fn broker(&self) -> &RunningBroker {
        &self.broker
    }

    /// The workers, in id order.
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Stops the workers (each leaves the broker first), then the broker.
    pub async fn shutdown(mut self) {
        let workers = std::mem::take(&mut self.workers);
        futures::future::join_all(workers.into_iter().map(Worker::shutdown)).await;
        self.broker.shutdown().await;
    }
}

/// Starts a broker and [`DEMO_WORKERS`] workers in this process (each with one slot per CPU
/// divided among them, at least one), runs `job` through the broker as the front-end user,
/// and shuts everything down, whether the job succeeded or not.
pub async fn run(job: Job, options: &Options) -> Result<JobReport, JobError> {
    let capacity = (crate::worker::default_capacity() / DEMO_WORKERS).max(1);
    let cluster = Cluster::start(DEMO_WORKERS, capacity)
        .await
        .map_err(|e| JobError::Invalid(format!("could not start the in-process cluster: {e}")))?;
    tracing::info!(broker = ?cluster.broker().url(), "in-process cluster started");
    let report = frontend::run(job, &Workers::Broker(cluster.front_end().clone()), options).await;
    cluster.shutdown().await;
    report
}
