//! The subjects: a raw framed echo (the physical baseline), pbrs over TCP and over TLS, and
//! tarpc, each with its server in this process on loopback TCP with `TCP_NODELAY`.

mod pbrs;
mod raw;
mod tarpc;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};

use crate::counting::{CountingStream, WriteCounters};
use crate::harness::{IN_FLIGHT, Measurements, PAYLOAD, Pattern, Plan, Subject, warm_up};

/// A client that tasks can share: clones of it call the same connection.
pub(crate) trait Caller: Clone + Send + Sync + 'static {
    /// What one call's future resolves to.
    type Answer: Send;

    /// One call, `ping(PAYLOAD)`: the client's own future, as a user awaits it or hands it to
    /// `buffer_unordered` (not wrapped in a future of ours, which would double what every
    /// pattern moves per call).
    fn call(&self) -> impl Future<Output = Self::Answer> + Send + '_;

    /// Panics unless `answer` is the right answer to a call.
    fn check(answer: Self::Answer);
}

/// A subject whose client is a [`Caller`]: every pattern is written once, here.
pub(crate) struct Shared<C> {
    /// The client every pattern calls through.
    pub(crate) client: C,
    /// Its socket write counters, if counted.
    pub(crate) writes: Option<WriteCounters>,
}

impl<C: Caller> Subject for Shared<C> {
    async fn round_trip(&mut self) {
        C::check(self.client.call().await);
    }

    async fn buffered(&mut self, total: usize) {
        futures::stream::iter(0..total)
            .map(|_| self.client.call())
            .buffer_unordered(IN_FLIGHT)
            .for_each(|answer| {
                C::check(answer);
                async {}
            })
            .await;
    }

    async fn tasks(&mut self, total: usize) {
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|task| {
                let calls = total / IN_FLIGHT + usize::from(task < total % IN_FLIGHT);
                let client = self.client.clone();
                tokio::spawn(async move {
                    for _ in 0..calls {
                        C::check(client.call().await);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a calling task panicked");
        }
    }

    fn writes(&self) -> Option<&WriteCounters> {
        self.writes.as_ref()
    }
}

/// Checks a ping's answer.
fn check(answer: u64) {
    assert_eq!(answer, PAYLOAD, "the answer differs from the value sent");
}

/// A listener on a free loopback port.
async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Accepts one connection, `TCP_NODELAY` on, counting its writes in `writes`.
async fn accept(listener: &TcpListener, writes: Arc<AtomicU64>) -> CountingStream<TcpStream> {
    let (stream, _) = listener.accept().await.unwrap();
    stream.set_nodelay(true).unwrap();
    CountingStream::new(stream, writes)
}

/// Connects to `addr`, `TCP_NODELAY` on, counting the writes in `writes`.
async fn connect(addr: SocketAddr, writes: Arc<AtomicU64>) -> CountingStream<TcpStream> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    CountingStream::new(stream, writes)
}

/// Every subject's measurements on one runtime.
pub(crate) struct Results {
    /// The raw framed echo.
    pub(crate) raw: Measurements,
    /// pbrs over TCP.
    pub(crate) pbrs: Measurements,
    /// pbrs over plain TCP through `Server::bind` and `Client::connect`, writes not counted.
    pub(crate) pbrs_direct: Measurements,
    /// pbrs over TLS (a pinned, generated identity).
    pub(crate) pbrs_tls: Measurements,
    /// tarpc over TCP, bincode.
    pub(crate) tarpc: Measurements,
}

/// The subjects' names, as `--profile` takes them.
pub(crate) const NAMES: [&str; 5] = ["raw", "pbrs", "pbrs-direct", "pbrs-tls", "tarpc"];

/// Runs `calls` calls of one subject, 64 in flight (`buffer_unordered(64)`, the raw echo's
/// pipelined loop) or, if `sequential`, one at a time, and returns its calls per second: a
/// steady load to profile with `perf record` or `strace -c`. `None` for an unknown name.
pub(crate) async fn profile(name: &str, calls: usize, sequential: bool) -> Option<f64> {
    async fn run<S: Subject>(mut subject: S, calls: usize, sequential: bool) -> f64 {
        let start = std::time::Instant::now();
        if sequential {
            for _ in 0..calls {
                subject.round_trip().await;
            }
        } else {
            subject.buffered(calls).await;
        }
        calls as f64 / start.elapsed().as_secs_f64()
    }
    let n = calls;
    let s = sequential;
    Some(match name {
        "raw" => run(raw::start().await, n, s).await,
        "pbrs" => run(pbrs::start().await, n, s).await,
        "pbrs-direct" => run(pbrs::start_direct(false).await, n, s).await,
        "pbrs-tls" => run(pbrs::start_direct(true).await, n, s).await,
        "tarpc" => run(tarpc::start().await, n, s).await,
        _ => return None,
    })
}

impl Results {
    /// Starts every subject on the current runtime and measures them, one pattern after the
    /// other: warmed up in it, the subjects take turns chunk by chunk, in an order that runs
    /// the two sides of each ratio the bench prints back to back (raw echo, pbrs, tarpc;
    /// pbrs-direct, pbrs-tls), so that a change in the machine's speed hits both alike. Every
    /// other turn goes the other way round, so that no subject always runs first.
    pub(crate) async fn measure(plan: &Plan) -> Results {
        let mut raw = raw::start().await;
        let mut pbrs = pbrs::start().await;
        let mut tarpc = tarpc::start().await;
        let mut pbrs_direct = pbrs::start_direct(false).await;
        let mut pbrs_tls = pbrs::start_direct(true).await;
        let mut results = Results {
            raw: Measurements::default(),
            pbrs: Measurements::default(),
            pbrs_direct: Measurements::default(),
            pbrs_tls: Measurements::default(),
            tarpc: Measurements::default(),
        };
        // One turn: a chunk of `pattern` on each subject named, in the order named.
        macro_rules! turn {
            ($pattern:expr; $($subject:ident)*) => {
                $(results.$subject.measure(&mut $subject, plan, $pattern).await;)*
            };
        }
        for pattern in Pattern::ALL {
            warm_up(&mut raw, plan, pattern).await;
            warm_up(&mut pbrs, plan, pattern).await;
            warm_up(&mut tarpc, plan, pattern).await;
            warm_up(&mut pbrs_direct, plan, pattern).await;
            warm_up(&mut pbrs_tls, plan, pattern).await;
            for chunk in 0..plan.chunks {
                if chunk % 2 == 0 {
                    turn!(pattern; raw pbrs tarpc pbrs_direct pbrs_tls);
                } else {
                    turn!(pattern; pbrs_tls pbrs_direct tarpc pbrs raw);
                }
            }
        }
        results
    }
}
