//! The accept loop outlives running out of file descriptors: a real child process with a
//! file-descriptor limit of 64 fills its table, fails to accept (EMFILE), backs off, and
//! serves the waiting client as soon as descriptors are free again.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rpc_core::{Client, Config, Server, remote};

const TEST_NAME: &str = "accept_loop_survives_running_out_of_file_descriptors";
const CHILD_ENV: &str = "PBRS_FD_EXHAUSTION_CHILD";

/// The child's root object.
#[remote]
pub trait Adder {
    /// `a + b`.
    async fn remote_add(&self, a: u32, b: u32) -> u32;
}

struct Add;

impl Adder for Add {
    async fn remote_add(&self, a: u32, b: u32) -> u32 {
        a + b
    }
}

#[test]
fn accept_loop_survives_running_out_of_file_descriptors() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" --exact "$1" --nocapture --test-threads=1"#)
        .arg(exe)
        .arg(TEST_NAME)
        .env(CHILD_ENV, "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the child never printed {needle:?}"));
            eprintln!("child: {line}");
            if line.contains(needle) {
                return line;
            }
        }
    };

    let addr = wait_for("listening on ")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    wait_for("descriptors exhausted");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The kernel completes the TCP handshake from the backlog; pbrs's hello has to wait for
    // the child to accept, which it cannot until descriptors are released.
    let config = Config::default().handshake_timeout(Duration::from_secs(60));
    let call = runtime.spawn(async move {
        let client = Client::connect_with(addr, config).await?;
        client.root::<AdderRef>().await?.add(2, 3).await
    });
    wait_for("accept failed");
    writeln!(to_child, "release").unwrap();
    let sum = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), call).await })
        .expect("the call did not complete after descriptors were released")
        .unwrap()
        .unwrap();
    assert_eq!(sum, 5);

    writeln!(to_child, "quit").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {status}");
}

/// Runs in the child: serve, fill the descriptor table, release it when told to.
fn child() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (commands_tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { return };
            if commands_tx.send(line).is_err() {
                return;
            }
        }
    });
    runtime.block_on(async move {
        let server = Server::bind("127.0.0.1:0", AdderRef::new(Add))
            .await
            .unwrap();
        println!("listening on {}", server.local_addr());
        let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run_until(async {
            let _ = stop.await;
        }));
        let mut filler = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => filler.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE, got {e}");
                    break;
                }
            }
        }
        println!("descriptors exhausted after {} files", filler.len());
        while let Some(command) = commands.recv().await {
            match command.as_str() {
                "release" => filler.clear(),
                "quit" => break,
                _ => {}
            }
        }
        let _ = stop_tx.send(());
        serving.await.unwrap();
    });
}
