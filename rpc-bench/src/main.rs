//! Benchmark: a pbrs call, over plain TCP and over TLS, against the physical baseline, a raw
//! `LengthDelimitedCodec` echo of a 16-byte payload over loopback TCP, all measured in this
//! one run on the same tokio runtime configuration (multi-thread, 2 workers). The TLS server
//! uses an identity generated at start-up, and the client pins its fingerprint; the handshake
//! happens before measuring, so the figures are those of an established TLS connection.
//!
//! Measured for each: the median sequential round trip (one call at a time), and calls per
//! second with 64 calls in flight on one connection (the median of several rounds). The last
//! two lines printed are `tls: seq=<pbrs-tls/pbrs median RTT> inflight64=<pbrs-tls/pbrs calls
//! per second>` and `ratios: seq=<pbrs/raw median RTT> inflight64=<pbrs/raw calls per second>`.
//!
//! Run: `cargo run --release -p rpc-bench` (`-- --quick` for a short smoke run).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use rpc_core::tls::{ClientTls, Identity, ServerTls};
use rpc_core::{Client, Server, remote};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// The remote object of the pbrs side: echoes its argument.
#[remote]
pub trait Echo {
    /// Returns `payload` unchanged.
    async fn remote_echo(&self, payload: Vec<u8>) -> Vec<u8>;
}

struct Echoer;

impl Echo for Echoer {
    async fn remote_echo(&self, payload: Vec<u8>) -> Vec<u8> {
        payload
    }
}

const PAYLOAD: [u8; 16] = *b"0123456789abcdef";
const IN_FLIGHT: usize = 64;

struct Plan {
    seq_warmup: usize,
    seq_samples: usize,
    inflight_rounds: usize,
    inflight_calls: usize,
}

/// One side of the comparison: how to do one round trip and how to keep 64 in flight.
trait Subject {
    async fn round_trip(&mut self);
    async fn pipelined(&mut self, total: usize);
}

/// The raw baseline's client: a framed TCP stream.
struct RawEcho(Framed<TcpStream, LengthDelimitedCodec>);

impl Subject for RawEcho {
    async fn round_trip(&mut self) {
        self.0.send(Bytes::from_static(&PAYLOAD)).await.unwrap();
        let echo = self.0.next().await.unwrap().unwrap();
        assert_eq!(echo.len(), PAYLOAD.len());
    }

    async fn pipelined(&mut self, total: usize) {
        let framed = &mut self.0;
        let mut sent = 0;
        while sent < IN_FLIGHT.min(total) {
            framed.feed(Bytes::from_static(&PAYLOAD)).await.unwrap();
            sent += 1;
        }
        SinkExt::<Bytes>::flush(framed).await.unwrap();
        let mut received = 0;
        while received < total {
            // Wait for one echo, take every other one already here, send as many, flush once.
            let mut echo = framed.next().await;
            loop {
                assert_eq!(echo.unwrap().unwrap().len(), PAYLOAD.len());
                received += 1;
                if sent < total {
                    framed.feed(Bytes::from_static(&PAYLOAD)).await.unwrap();
                    sent += 1;
                }
                match framed.next().now_or_never() {
                    Some(next) => echo = next,
                    None => break,
                }
            }
            SinkExt::<Bytes>::flush(framed).await.unwrap();
        }
    }
}

/// The raw baseline's server: echoes frames, flushing once per burst of readable frames.
async fn raw_echo_server(listener: TcpListener) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(async move {
            let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
            while let Some(Ok(frame)) = framed.next().await {
                if framed.feed(frame.freeze()).await.is_err() {
                    return;
                }
                loop {
                    match framed.next().now_or_never() {
                        Some(Some(Ok(frame))) => {
                            if framed.feed(frame.freeze()).await.is_err() {
                                return;
                            }
                        }
                        Some(_) => return,
                        None => break,
                    }
                }
                if SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The pbrs client: a typed proxy to an `Echo` root object, over plain TCP or TLS.
struct PbrsEcho(EchoRef);

impl PbrsEcho {
    /// Starts a pbrs echo server on loopback and connects to it: over TLS when `tls` (a
    /// generated identity, pinned by the client), else over plain TCP.
    async fn start(tls: bool) -> (PbrsEcho, JoinHandle<()>) {
        let mut server = Server::bind("127.0.0.1:0", EchoRef::new(Echoer))
            .await
            .unwrap();
        let addr = server.local_addr().to_string();
        let mut pin = None;
        if tls {
            let identity = Identity::generate(&["localhost"]).unwrap();
            pin = Some(ClientTls::pinned(identity.fingerprint()));
            server = server.with_tls(ServerTls::new(identity)).unwrap();
        }
        let handle = tokio::spawn(server.run());
        let client = match &pin {
            Some(pin) => Client::connect_tls(&addr, pin).await,
            None => Client::connect(&addr).await,
        };
        let echo = client.unwrap().root().await.unwrap();
        (PbrsEcho(echo), handle)
    }
}

impl Subject for PbrsEcho {
    async fn round_trip(&mut self) {
        let echo = self.0.echo(PAYLOAD.to_vec()).await.unwrap();
        assert_eq!(echo.len(), PAYLOAD.len());
    }

    async fn pipelined(&mut self, total: usize) {
        let mut in_flight = FuturesUnordered::new();
        let mut sent = 0;
        while sent < IN_FLIGHT.min(total) {
            in_flight.push(self.0.echo(PAYLOAD.to_vec()));
            sent += 1;
        }
        while let Some(echo) = in_flight.next().await {
            assert_eq!(echo.unwrap().len(), PAYLOAD.len());
            if sent < total {
                in_flight.push(self.0.echo(PAYLOAD.to_vec()));
                sent += 1;
            }
        }
    }
}

struct Figures {
    median_rtt: Duration,
    calls_per_sec: f64,
}

async fn measure(subject: &mut impl Subject, plan: &Plan) -> Figures {
    for _ in 0..plan.seq_warmup {
        subject.round_trip().await;
    }
    let mut rtts = Vec::with_capacity(plan.seq_samples);
    for _ in 0..plan.seq_samples {
        let start = Instant::now();
        subject.round_trip().await;
        rtts.push(start.elapsed());
    }
    rtts.sort();
    subject.pipelined(plan.inflight_calls / 4).await;
    let mut rates = Vec::with_capacity(plan.inflight_rounds);
    for _ in 0..plan.inflight_rounds {
        let start = Instant::now();
        subject.pipelined(plan.inflight_calls).await;
        rates.push(plan.inflight_calls as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Figures {
        median_rtt: rtts[rtts.len() / 2],
        calls_per_sec: rates[rates.len() / 2],
    }
}

async fn run(plan: Plan) {
    let raw_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_addr = raw_listener.local_addr().unwrap();
    let raw_server = tokio::spawn(raw_echo_server(raw_listener));
    let stream = TcpStream::connect(raw_addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut raw = RawEcho(Framed::new(stream, LengthDelimitedCodec::new()));
    let (mut pbrs, pbrs_server) = PbrsEcho::start(false).await;
    let (mut pbrs_tls, pbrs_tls_server) = PbrsEcho::start(true).await;

    // Alternate the subjects so that drift in machine load hits them alike.
    let mut figs: [Vec<Figures>; 3] = Default::default();
    for _ in 0..3 {
        figs[0].push(measure(&mut raw, &plan).await);
        figs[1].push(measure(&mut pbrs, &plan).await);
        figs[2].push(measure(&mut pbrs_tls, &plan).await);
    }
    let [raw, pbrs, pbrs_tls] = figs.map(|figs| {
        let mut rtt: Vec<Duration> = figs.iter().map(|f| f.median_rtt).collect();
        let mut rate: Vec<f64> = figs.iter().map(|f| f.calls_per_sec).collect();
        rtt.sort();
        rate.sort_by(f64::total_cmp);
        Figures {
            median_rtt: rtt[rtt.len() / 2],
            calls_per_sec: rate[rate.len() / 2],
        }
    });

    println!(
        "{:<36} {:>16} {:>22}",
        "", "median RTT (µs)", "calls/s, 64 in flight"
    );
    for (label, figs) in [
        ("raw LengthDelimitedCodec echo", &raw),
        ("pbrs call (16-byte Vec<u8> echo)", &pbrs),
        ("pbrs call over TLS (pinned)", &pbrs_tls),
    ] {
        println!(
            "{label:<36} {:>16.1} {:>22.0}",
            figs.median_rtt.as_secs_f64() * 1e6,
            figs.calls_per_sec
        );
    }
    let ratios = |name: &str, of: &Figures, to: &Figures| {
        println!(
            "{name}: seq={:.2} inflight64={:.2}",
            of.median_rtt.as_secs_f64() / to.median_rtt.as_secs_f64(),
            of.calls_per_sec / to.calls_per_sec
        );
    };
    ratios("tls", &pbrs_tls, &pbrs);
    ratios("ratios", &pbrs, &raw);
    raw_server.abort();
    pbrs_server.abort();
    pbrs_tls_server.abort();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            seq_warmup: 200,
            seq_samples: 2_000,
            inflight_rounds: 3,
            inflight_calls: 20_000,
        }
    } else {
        Plan {
            seq_warmup: 2_000,
            seq_samples: 20_000,
            inflight_rounds: 7,
            inflight_calls: 100_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("could not start the tokio runtime");
    runtime.block_on(run(plan));
}
