//! The library in one process, over real loopback TLS: the function behind the
//! no-argument `calc-client`, the worker's slots and load, its URL and who can reach it, its
//! broker link and login, and the front end's failures when a broker has no worker or
//! refuses the front end's login.

use std::future::Future;
use std::time::{Duration, Instant};

use broker_server::queue::{Applied, Change, WorkerId, WorkerState, WorkerUpdate};
use broker_server::{Forbidden, Role, WorkerEvent};
use calc_client::demo::{self, Cluster};
use calc_client::frontend::{self, JobError, Options, Workers};
use calc_client::job::Job;
use calc_client::progress::ProgressMode;
use calc_client::worker::{Worker, WorkerConfig};
use calc_client::{CalculatorRef, WorkerInfo};
use rpc_core::tls::ClientTls;
use rpc_core::{CallError, Client, RemoteErrorKind, RemoteRef};
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

/// The cluster's queued workers, as its broker sees them.
fn queued(cluster: &Cluster) -> Vec<WorkerState> {
    cluster.broker().service().workers()
}

/// A connection to `worker`'s calculator, by its URL.
async fn calculator(worker: &Worker) -> CalculatorRef {
    Client::connect_url(&worker.url().to_string())
        .await
        .unwrap()
}

/// The URLs of `workers`, for direct mode.
fn urls(workers: &[Worker]) -> Workers {
    Workers::Direct(workers.iter().map(|w| w.url().to_string()).collect())
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
    let calc = calculator(&worker).await;

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
    let listed = queued(&cluster);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].capacity, listed[0].load),
        ("worker-1/1", 2, 0)
    );
    let worker = &cluster.workers()[0];
    assert_eq!(listed[0].addr, worker.url().to_string());
    assert!(listed[0].addr.starts_with("pbrs://"));

    let calc = calculator(worker).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let calc = calc.clone();
            tokio::spawn(async move { calc.count_primes(FOREVER.0, FOREVER.1).await })
        })
        .collect();
    eventually("the broker sees a load of 3", || {
        let load = queued(&cluster)[0].load;
        async move { (load == 3).then_some(()) }
    })
    .await;
    for call in calls {
        call.abort();
    }
    eventually("the broker sees a load of 0", || {
        let load = queued(&cluster)[0].load;
        async move { (load == 0).then_some(()) }
    })
    .await;
    cluster.shutdown().await;
}

/// A worker restarted with the same id (and login) joins again, logging in anew: its
/// sequence numbers grow across restarts, so the broker does not take the new join for stale
/// news. A graceful shutdown takes it out of the queue at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_with_the_same_id_rejoins() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let login = cluster.new_user("worker-5", Role::Worker).unwrap();
    for round in 0..3 {
        let config = WorkerConfig::new(5).capacity(1).broker(login.clone());
        let worker = Worker::start(loopback().await, config).unwrap();
        tokio::time::timeout(PATIENCE, worker.joined())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the worker did not rejoin"));
        let listed = queued(&cluster);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addr, worker.url().to_string());
        worker.shutdown().await;
        assert!(queued(&cluster).is_empty(), "round {round}");
    }
    cluster.shutdown().await;
}

/// A broker without workers: the job fails after the grace period, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_workers_fails_the_job_clearly() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let options = quiet().no_worker_grace(Duration::from_millis(300));
    let workers = Workers::Broker(cluster.front_end().clone());
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
    let report = frontend::run(
        Job::new(1_000_000).with_chunk(10_000),
        &urls(&workers),
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
    let direct = urls(&workers);
    let job = tokio::spawn(async move {
        frontend::run(
            Job::new(2_000_000).with_chunk(10_000),
            &direct,
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
    let cluster = Cluster::start(0, 1).await.unwrap();
    let service = cluster.broker().service().clone();
    let login = cluster.new_user("worker-7", Role::Worker).unwrap();
    let config = WorkerConfig::new(7).capacity(1).broker(login);
    let worker = Worker::start(loopback().await, config).unwrap();
    tokio::time::timeout(PATIENCE, worker.joined())
        .await
        .expect("the worker joins");
    let calc = calculator(&worker).await;
    let mut events = service.subscribe();

    let just_ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    for removal_seq in [just_ahead, u64::MAX / 2] {
        let removal = WorkerUpdate {
            worker: WorkerId::from("worker-7/7"),
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
        assert_eq!(queued[0].addr, worker.url().to_string());
    }

    calc.peer().expect("a remote calculator").close();
    worker.shutdown().await;
    assert!(service.is_empty(), "a graceful shutdown removes the worker");
    cluster.shutdown().await;
}

/// A front end logged in with a worker's login: the broker refuses to list workers to it,
/// and the job fails at once with the broker's reason, not after retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_the_broker_refuses_fails_at_once() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let login = cluster.new_user("not-a-front-end", Role::Worker).unwrap();
    let error = tokio::time::timeout(
        PATIENCE,
        frontend::run(Job::new(10_000), &Workers::Broker(login), &quiet()),
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
    cluster.shutdown().await;
}

/// A worker login may own at most four worker ids: its fifth `Added` is refused as
/// `Forbidden::TooManyWorkers`, and the fifth worker is not queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_login_may_join_at_most_four_workers() {
    let cluster = Cluster::start(0, 1).await.unwrap();
    let broker = cluster
        .new_user("worker-many", Role::Worker)
        .unwrap()
        .connect()
        .await
        .unwrap();
    for id in 1..=5 {
        let join = WorkerUpdate {
            worker: WorkerId(format!("worker-many/{id}")),
            seq: 1,
            change: Change::Added {
                addr: format!("pbrs://example@127.0.0.1:{}/secret", 9000 + id),
                capacity: 1,
                load: 0,
            },
        };
        let applied = broker.join(join).await.unwrap();
        if id <= 4 {
            assert_eq!(applied, Ok(Applied::Added), "worker {id}");
        } else {
            assert!(
                matches!(applied, Err(Forbidden::TooManyWorkers { .. })),
                "worker {id}: {applied:?}"
            );
        }
    }
    assert_eq!(queued(&cluster).len(), 4);
    broker.peer().expect("a remote broker").close();
    cluster.shutdown().await;
}

/// A worker's calculator is reachable by its URL only: not as the root object of its
/// server, nor under another secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_reachable_by_its_url_only() {
    let worker = Worker::start(loopback().await, WorkerConfig::new(3)).unwrap();
    let url = worker.url().clone();
    assert_eq!(
        calculator(&worker).await.calculate(1, 2).await.unwrap(),
        (3, 3)
    );

    let pinned = ClientTls::pinned(url.fingerprint());
    let client = Client::connect_tls(url.addr(), &pinned).await.unwrap();
    let root: Result<CalculatorRef, CallError> = client.root().await;
    let refused = match root {
        Ok(calc) => calc.calculate(1, 2).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(
        matches!(
            refused,
            CallError::Remote {
                kind: RemoteErrorKind::NoSuchObject,
                ..
            }
        ),
        "{refused}"
    );
    client.close();

    let text = url.to_string();
    let guessed = format!("{}00000000", &text[..text.len() - 8]);
    let error = Client::connect_url::<CalculatorRef>(&guessed)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Remote {
                kind: RemoteErrorKind::NoSuchObject,
                ..
            }
        ),
        "{error}"
    );
    worker.shutdown().await;
}

/// A worker with a data directory keeps its identity and URL secret there: restarted, even
/// on another port, its URL differs only by the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_data_directory_keeps_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = Vec::new();
    for _ in 0..2 {
        let config = WorkerConfig::new(1).data_dir(dir.path()).unwrap();
        let worker = Worker::start(loopback().await, config).unwrap();
        urls.push(worker.url().clone());
        worker.shutdown().await;
    }
    assert_ne!(urls[0].addr(), urls[1].addr(), "two different ports");
    assert_eq!(
        urls[0].clone().with_addr("here"),
        urls[1].clone().with_addr("here")
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let config = WorkerConfig::new(1).data_dir(elsewhere.path()).unwrap();
    let other = Worker::start(loopback().await, config).unwrap();
    assert_ne!(other.url().fingerprint(), urls[0].fingerprint());
    other.shutdown().await;
}
