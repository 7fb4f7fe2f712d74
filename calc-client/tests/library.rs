//! The library in one process, over real loopback TCP: the function behind the
//! no-argument `calc-client`, the worker's slots and load, its broker link, and the front
//! end's failure when a broker has no worker.

use std::future::Future;
use std::time::{Duration, Instant};

use broker_server::queue::{Applied, Change, WorkerId, WorkerState, WorkerUpdate};
use broker_server::{BrokerRef, BrokerService, BrokerSession, MAX_PAGE, Role, WorkerEvent};
use calc_client::demo::{self, Cluster};
use calc_client::frontend::{self, JobError, Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use calc_client::worker::{Worker, WorkerConfig};
use calc_client::{CalculatorRef, WorkerInfo};
use rpc_core::Client;
use tokio::net::TcpListener;

const PATIENCE: Duration = Duration::from_secs(30);

/// A range whose primes take hours to count: 2^40 and up, by trial division.
const FOREVER: (u64, u64) = (1 << 40, (1 << 40) + 1_000_000_000);

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Polls `probe` (every 5 ms) until it returns `Some`, or panics after [`PATIENCE`].
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The broker's first page of queued workers (all of them, in these tests).
async fn queued(broker: &BrokerRef) -> Vec<WorkerState> {
    let page = broker.workers(0, MAX_PAGE).await.unwrap().unwrap();
    assert!(page.is_last(), "more than one page of workers");
    page.workers
}

fn quiet() -> Options {
    Options::default().progress(ProgressMode::Quiet)
}

/// What `calc-client` runs without arguments, on a smaller job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_demo_counts_the_primes() {
    let report = demo::run(Job::new(2_000_000), &quiet()).await.unwrap();
    assert_eq!(report.total, 148_933);
    assert_eq!(report.chunks, 200);
    assert_eq!(report.workers.len(), 3);
    assert_eq!(report.workers.iter().map(|w| w.chunks).sum::<usize>(), 200);
    assert_eq!(report.checks.len(), 3);
    assert!(report.known_total);
    assert!(report.to_string().ends_with("\ntotal: 148933"));
}

/// A chunk that computes for a long time holds the worker's only slot, yet `calculate` and
/// `info` are answered at once; a cancelled chunk frees its slot and load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chunk_does_not_stall_other_calls_and_cancelling_frees_its_slot() {
    let worker = Worker::start(loopback().await, WorkerConfig::new(9).capacity(1)).unwrap();
    let client = Client::connect(worker.local_addr()).await.unwrap();
    let calc: CalculatorRef = client.root().await.unwrap();

    let load_is = |n: u32| {
        let calc = calc.clone();
        move || {
            let calc = calc.clone();
            async move { (calc.info().await.unwrap().load == n).then_some(()) }
        }
    };
    // The long chunk must take the only slot first (else the short one would just run).
    let long = tokio::spawn({
        let calc = calc.clone();
        async move { calc.count_primes(FOREVER.0, FOREVER.1).await }
    });
    eventually("the long chunk is counted in the load", load_is(1)).await;
    let queued = tokio::spawn({
        let calc = calc.clone();
        async move { calc.count_primes(0, 100).await }
    });
    eventually("both chunks are counted in the load", load_is(2)).await;

    let quick = calc.with_timeout(Duration::from_secs(5));
    assert_eq!(quick.calculate(40, 2).await.unwrap(), (42, 9));
    assert_eq!(
        quick.info().await.unwrap(),
        WorkerInfo {
            id: 9,
            capacity: 1,
            load: 2
        }
    );
    assert!(
        !queued.is_finished(),
        "the second chunk should wait for the only slot"
    );

    long.abort(); // drops the call: the worker's handler is cancelled, its thread stops
    assert_eq!(
        tokio::time::timeout(PATIENCE, queued)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        (25, 9)
    );
    eventually("the load is back to 0", load_is(0)).await;
    worker.shutdown().await;
}

/// A worker publishes its load to the broker as it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_hears_of_load_changes() {
    let cluster = Cluster::start(1, 2).await.unwrap();
    let client = Client::connect(cluster.broker_addr()).await.unwrap();
    let broker: BrokerRef = client.root().await.unwrap();
    let listed = queued(&broker).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].capacity, listed[0].load),
        ("1", 2, 0)
    );
    assert_eq!(listed[0].addr, cluster.worker_addrs()[0].to_string());

    let worker = Client::connect(cluster.worker_addrs()[0]).await.unwrap();
    let calc: CalculatorRef = worker.root().await.unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.count_primes(FOREVER.0, FOREVER.1).await })
        })
        .collect();
    eventually("the broker sees a load of 3", || {
        let broker = broker.clone();
        async move { (queued(&broker).await[0].load == 3).then_some(()) }
    })
    .await;
    for call in calls {
        call.abort();
    }
    eventually("the broker sees a load of 0", || {
        let broker = broker.clone();
        async move { (queued(&broker).await[0].load == 0).then_some(()) }
    })
    .await;
    cluster.shutdown().await;
}

/// A worker restarted with the same id joins again: its sequence numbers grow across
/// restarts, so the broker does not take the new join for stale news. A graceful shutdown
/// takes it out of the queue at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_with_the_same_id_rejoins() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let broker_addr = cluster.broker_addr().to_string();
    let client = Client::connect(&broker_addr).await.unwrap();
    let broker: BrokerRef = client.root().await.unwrap();
    for round in 0..3 {
        let config = WorkerConfig::new(5).capacity(1).broker(broker_addr.clone());
        let worker = Worker::start(loopback().await, config).unwrap();
        tokio::time::timeout(PATIENCE, worker.joined())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the worker did not rejoin"));
        let listed = queued(&broker).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addr, worker.local_addr().to_string());
        worker.shutdown().await;
        assert!(queued(&broker).await.is_empty(), "round {round}");
    }
    cluster.shutdown().await;
}

/// A broker without workers: the job fails after the grace period, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_workers_fails_the_job_clearly() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let options = quiet().no_worker_grace(Duration::from_millis(300));
    let workers = Workers::Broker(cluster.broker_addr().to_string());
    let error = frontend::run(Job::new(10_000), &workers, &options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            JobError::NoWorkerLeft {
                missing: 10,
                chunks: 10,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("no worker left: the broker at"),
        "{error}"
    );
    cluster.shutdown().await;
}

/// Direct mode gives every worker chunks, and the report has one row per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_uses_every_worker() {
    let mut workers = Vec::new();
    for id in 1..=3 {
        workers.push(Worker::start(loopback().await, WorkerConfig::new(id).capacity(1)).unwrap());
    }
    let addrs = workers.iter().map(|w| w.local_addr().to_string()).collect();
    let report = frontend::run(
        Job::new(1_000_000).with_chunk(10_000),
        &Workers::Direct(addrs),
        &quiet(),
    )
    .await
    .unwrap();
    assert_eq!(report.total, 78_498);
    assert_eq!(report.workers.len(), 3);
    for w in &report.workers {
        assert!(w.chunks > 0 && w.lost.is_none(), "{w:?}");
    }
    for worker in workers {
        worker.shutdown().await;
    }
}

/// Losing workers is not a chunk's fault: with `max_attempts(1)`, chunks in flight on two
/// workers that die are still retried on the third, and the job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_workers_do_not_count_as_failed_attempts() {
    let mut workers = Vec::new();
    for id in 1..=3 {
        workers.push(Worker::start(loopback().await, WorkerConfig::new(id).capacity(1)).unwrap());
    }
    let addrs = workers.iter().map(|w| w.local_addr().to_string()).collect();
    let job = tokio::spawn(async move {
        frontend::run(
            Job::new(2_000_000).with_chunk(10_000),
            &Workers::Direct(addrs),
            &quiet().max_attempts(1),
        )
        .await
    });
    // Mid-job: both doomed workers are computing a chunk.
    eventually("two workers are busy", || {
        let busy = workers[1].load() > 0 && workers[2].load() > 0;
        async move { busy.then_some(()) }
    })
    .await;
    // Dropped without shutdown: their servers stop at once, like a crash.
    let survivor = workers.remove(0);
    drop(workers);
    let report = tokio::time::timeout(PATIENCE, job)
        .await
        .expect("the job did not finish")
        .unwrap()
        .expect("the job failed although a worker was left");
    assert_eq!(report.total, 148_933);
    survivor.shutdown().await;
}

/// A worker the broker removed while it still serves joins again at its next load update:
/// after a removal just ahead of its sequence numbers (its update is then `UnknownWorker`),
/// and after one far ahead of its clock (`Stale`, and its re-join moves past it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_worker_joins_again_at_its_next_update() {
    let running = broker_server::spawn("127.0.0.1:0").await.unwrap();
    let service = running.service().clone();
    let config = WorkerConfig::new(7)
        .capacity(1)
        .broker(running.local_addr().to_string());
    let worker = Worker::start(loopback().await, config).unwrap();
    tokio::time::timeout(PATIENCE, worker.joined())
        .await
        .expect("the worker joins");
    let client = Client::connect(worker.local_addr()).await.unwrap();
    let calc: CalculatorRef = client.root().await.unwrap();
    let mut events = service.subscribe();

    let just_ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    for removal_seq in [just_ahead, u64::MAX / 2] {
        let removal = WorkerUpdate {
            worker: WorkerId::from("7"),
            seq: removal_seq,
            change: Change::Removed,
        };
        assert_eq!(
            service.publish(removal),
            Applied::Removed { was_queued: true },
            "removal at {removal_seq}"
        );
        assert!(service.is_empty());
        // A chunk changes the worker's load: it publishes, hears it is gone, joins again.
        assert_eq!(calc.count_primes(0, 100).await.unwrap(), (25, 7));
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .expect("the worker joins again")
            .unwrap();
        assert!(matches!(event, WorkerEvent::Joined { .. }), "{event:?}");
        let queued = service.workers();
        assert_eq!(queued.len(), 1, "after the removal at {removal_seq}");
        assert_eq!(queued[0].addr, worker.local_addr().to_string());
    }

    client.close();
    worker.shutdown().await;
    assert!(service.is_empty(), "a graceful shutdown removes the worker");
    running.shutdown().await;
}

/// A broker that does not take the front end's login for a front end's: the job fails at
/// once with the broker's reason, not after retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_the_broker_refuses_fails_at_once() {
    let session = BrokerSession::new(BrokerService::new(), Role::Worker, "not-a-front-end");
    let server =
        rpc_core::Server::from_listener(loopback().await, BrokerRef::new(session)).unwrap();
    let workers = Workers::Broker(server.local_addr().to_string());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let error = tokio::time::timeout(
        PATIENCE,
        frontend::run(Job::new(10_000), &workers, &quiet()),
    )
    .await
    .expect("the job fails at once")
    .unwrap_err();
    assert!(matches!(error, JobError::Forbidden { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("a worker may not list the workers"),
        "{error}"
    );
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, serving)
        .await
        .unwrap()
        .unwrap();
}
