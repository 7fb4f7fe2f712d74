//! Objects travel by reference, both ways: the client hands the server a *local* object, the
//! server calls it back over the same connection while it works, and when the server hands
//! the reference back, the client gets its own object again (same identity, no network).
//!
//! `cargo run -p examples --example callbacks`

use std::sync::Mutex;

use rpc_core::{CallError, Client, RemoteRef, Server, remote};
use tokio::sync::oneshot;

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
        let mut sum = 0;
        for step in 1..=steps {
            sum += u64::from(step);
            // A call into the client, over the connection the client called us on.
            if let Err(e) = progress.report(step, steps).await {
                println!("server: the client's progress object is gone ({e}); stopping");
                break;
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
