//! The whole demo in one process: a broker, workers joined to it, and a job run through it.
//!
//! [`Cluster`] starts a broker (`broker_server::run` on a loopback port) and workers on
//! loopback ports that join it, and waits until the broker lists them all. Everything talks
//! over real TCP, exactly as separate processes would; only the process boundary is missing.
//! [`run`] is what `calc-client` does when given no worker or broker address: start a
//! cluster of three, run the job through the broker, shut everything down.

use std::net::SocketAddr;
use std::time::Duration;

use rpc_core::CallError;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::frontend::{self, JobError, Options, Workers};
use crate::job::{Job, JobReport};
use crate::worker::{Worker, WorkerConfig};

/// Workers started by [`run`].
pub const DEMO_WORKERS: u32 = 3;

/// A broker and its workers, running in this process.
#[derive(Debug)]
pub struct Cluster {
    broker_addr: SocketAddr,
    stop_broker: Option<oneshot::Sender<()>>,
    broker: JoinHandle<Result<(), CallError>>,
    workers: Vec<Worker>,
}

async fn bind_loopback() -> Result<TcpListener, CallError> {
    TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| CallError::Io {
            context: "could not bind a loopback port".into(),
            source: e,
        })
}

impl Cluster {
    /// Starts a broker and `workers` workers (ids 1, 2, ...) of `capacity` slots each, and
    /// waits (at most 10 s) until every worker has joined the broker.
    pub async fn start(workers: u32, capacity: u32) -> Result<Cluster, CallError> {
        let listener = bind_loopback().await?;
        let broker_addr = listener.local_addr().map_err(|e| CallError::Io {
            context: "could not read the broker's address".into(),
            source: e,
        })?;
        let (stop_broker, stopped) = oneshot::channel::<()>();
        let broker = tokio::spawn(broker_server::run(listener, async {
            let _ = stopped.await;
        }));
        let mut cluster = Cluster {
            broker_addr,
            stop_broker: Some(stop_broker),
            broker,
            workers: Vec::new(),
        };
        for id in 1..=workers {
            let config = WorkerConfig::new(id)
                .capacity(capacity)
                .broker(broker_addr.to_string());
            cluster
                .workers
                .push(Worker::start(bind_loopback().await?, config)?);
        }
        let joined = futures::future::join_all(cluster.workers.iter().map(Worker::joined));
        if tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .is_err()
        {
            return Err(CallError::Timeout {
                what: "workers joining the in-process broker",
                after: Duration::from_secs(10),
            });
        }
        Ok(cluster)
    }

    /// The broker's address.
    pub fn broker_addr(&self) -> SocketAddr {
        self.broker_addr
    }

    /// The workers' addresses, in id order.
    pub fn worker_addrs(&self) -> Vec<SocketAddr> {
        self.workers.iter().map(Worker::local_addr).collect()
    }

    /// Stops the workers (each leaves the broker first), then the broker.
    pub async fn shutdown(mut self) {
        let workers = std::mem::take(&mut self.workers);
        futures::future::join_all(workers.into_iter().map(Worker::shutdown)).await;
        if let Some(stop) = self.stop_broker.take() {
            let _ = stop.send(());
        }
        match (&mut self.broker).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("the in-process broker failed: {e}"),
            Err(e) => tracing::warn!("the in-process broker task failed: {e}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.broker.abort();
    }
}

/// Starts a broker and [`DEMO_WORKERS`] workers in this process (each with one slot per CPU
/// divided among them, at least one), runs `job` through the broker, and shuts everything
/// down, whether the job succeeded or not.
pub async fn run(job: Job, options: &Options) -> Result<JobReport, JobError> {
    let capacity = (crate::worker::default_capacity() / DEMO_WORKERS).max(1);
    let cluster = Cluster::start(DEMO_WORKERS, capacity)
        .await
        .map_err(|e| JobError::Invalid(format!("could not start the in-process cluster: {e}")))?;
    tracing::info!(broker = %cluster.broker_addr(), "in-process cluster started");
    let report = frontend::run(
        job,
        &Workers::Broker(cluster.broker_addr().to_string()),
        options,
    )
    .await;
    cluster.shutdown().await;
    report
}
