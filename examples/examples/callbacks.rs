//! Objects travel by reference, both ways: the client hands the server a *local* object, the
//! server calls it back over the same connection while it works, and when the server hands
//! the reference back, the client gets its own object again (same identity, no network).
//!
//! Calls back into the client have a deadline like any call: the server gives progress
//! reports a short one, and stops reporting to a progress object that does not answer in time
//! rather than let it hold up the work.
//!
//! `cargo run -p examples --example callbacks`

use std::sync::Mutex;
use std::time::Duration;

use rpc_core::{CallError, Client, RemoteRef, Server, remote};
use tokio::sync::oneshot;

/// How long the server waits for a progress report to be taken (the default of every call,
/// `Config::default_call_timeout`, is 10 s).
const REPORT_DEADLINE: Duration = Duration::from_secs(2);

/// Lives in the client: told about progress by the server.
#[remote]
pub trait Progress {
    /// Step `step` of `of` is done.
    async fn remote_report(&self, step: u32, of: u32);
}

/// Lives in the server: does work and reports progress to the caller's object.
#[remote]
pub trait Job {
    /// Sums `1..=steps`, reporting each step to `progress`.
    async fn remote_run(&self, steps: u32, progress: ProgressRef) -> u64;
    /// Gives the reference back, as a server that stored it would.
    async fn remote_give_back(&self, progress: ProgressRef) -> ProgressRef;
}

struct Printer {
    seen: Mutex<Vec<u32>>,
}

impl Progress for Printer {
    async fn remote_report(&self, step: u32, of: u32) {
        println!("client: the server reports step {step} of {of}");
        self.seen.lock().unwrap().push(step);
    }
}

struct Summer;

impl Job for Summer {
    async fn remote_run(&self, steps: u32, progress: ProgressRef) -> u64 {
        let mut progress = Some(progress.with_timeout(REPORT_DEADLINE));
        let mut sum = 0;
        for step in 1..=steps {
            sum += u64::from(step);
            let Some(reports) = &progress else { continue };
            // A call into the client, over the connection the client called us on.
            match reports.report(step, steps).await {
                Ok(()) => {}
                Err(e) if e.is_timeout() => {
                    // The client is slow or stuck: finish the work without reporting to it.
                    println!("server: no progress report taken in {REPORT_DEADLINE:?}; going on");
                    progress = None;
                }
                Err(e) => {
                    println!("server: the client's progress object is gone ({e}); stopping");
                    break;
                }
            }
        }
        sum
    }

    async fn remote_give_back(&self, progress: ProgressRef) -> ProgressRef {
        progress
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let server = Server::bind("127.0.0.1:0", JobRef::new(Summer)).await?;
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    let client = Client::connect(addr).await?;
    let job: JobRef = client.root().await?;
    let progress = ProgressRef::new(Printer {
        seen: Mutex::new(Vec::new()),
    });

    let sum = job.run(5, progress.clone()).await?;
    println!("client: the server answered {sum}");
    assert_eq!(sum, 15);

    let back = job.give_back(progress.clone()).await?;
    println!(
        "client: the reference came back as a local object: {}, the same object: {}",
        back.is_local(),
        back.same_object(&progress)
    );
    assert!(back.is_local() && back.same_object(&progress));
    // Calls on it now go straight to the object, without the network.
    back.report(6, 5).await?;

    drop(client);
    let _ = stop.send(());
    serving.await.expect("the server task panicked");
    Ok(())
}
