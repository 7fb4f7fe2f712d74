//! `fib-server` and `fib-client` as real processes over loopback TCP: three clients while the
//! server is killed with SIGKILL three times, a clean stop and start, and the data
//! directories the server must refuse.

mod support;

use std::collections::HashSet;
use std::path::Path;

use num_bigint::BigUint;
use rand::Rng;
use support::{Lab, PATIENCE};

const SERVER: &str = env!("CARGO_BIN_EXE_fib-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_fib-client");
const LISTENING: &str = "fib-server listening on ";

/// The first `count` numbers the server should hand out, computed here on their own:
/// the Fibonacci numbers from 1, 2 on (the first 1 is left out: it would repeat).
fn fibonacci(count: usize) -> Vec<String> {
    let (mut a, mut b) = (BigUint::from(1u32), BigUint::from(2u32));
    let mut numbers = Vec::with_capacity(count);
    for _ in 0..count {
        numbers.push(a.to_string());
        let c = &a + &b;
        (a, b) = (b, c);
    }
    numbers
}

/// Starts a fib-server on `listen` with `data`, as `name`, then `name.2`, ... if the port is
/// not free yet (a bounded number of times); returns the name that runs and its address.
fn start_server(lab: &mut Lab, name: &str, listen: &str, data: &str) -> (String, String) {
    for attempt in 1..=10 {
        let this = format!("{name}.{attempt}");
        lab.spawn(&this, SERVER, &["--listen", listen, "--data", data]);
        let what = format!("listening line or exit of {this}");
        lab.wait_until(PATIENCE, &what, |lab| {
            lab.line_after(&this, LISTENING).is_some() || lab.ended(&this)
        });
        if let Some(addr) = lab.line_after(&this, LISTENING) {
            return (this, addr);
        }
        let stderr = lab.stderr(&this);
        assert!(
            stderr.contains("cannot listen on"),
            "{this} failed:\n{}",
            lab.log
        );
    }
    panic!("{name} never got {listen}; output:\n{}", lab.log)
}

/// A temporary directory, the path of a data directory in it (not made yet) and a lab.
fn fresh() -> (tempfile::TempDir, String, Lab) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    (dir, data, Lab::new())
}

/// How many numbers `clients` printed so far, in all.
fn printed(lab: &Lab, clients: &[&str]) -> usize {
    clients.iter().map(|c| lab.stdout(c).len()).sum()
}

#[test]
fn three_clients_and_three_kill_9s_see_no_number_twice() {
    const COUNT: usize = 300;
    let (_dir, data, mut lab) = fresh();
    let data = data.as_str();
    let (mut server, addr) = start_server(&mut lab, "server-0", "127.0.0.1:0", data);
    let clients = ["client-a", "client-b", "client-c"];
    for client in clients {
        let count = COUNT.to_string();
        lab.spawn(client, CLIENT, &["--server", &addr, "--count", &count]);
    }
    // Each kill comes after a random number of further numbers: a random moment, whatever
    // the machine's speed. 3 × 150 at most, well before the clients are done.
    let mut plan = Vec::new();
    for kill in 1..=3 {
        let at = printed(&lab, &clients) + rand::rng().random_range(10..=150);
        plan.push(at);
        let what = format!("{at} numbers printed before kill {kill} (plan {plan:?})");
        lab.wait_until(PATIENCE, &what, |lab| printed(lab, &clients) >= at);
        lab.kill(&server);
        (server, _) = start_server(&mut lab, &format!("server-{kill}"), &addr, data);
    }
    for client in clients {
        let status = lab.wait_exit(client, PATIENCE);
        assert!(
            status.success(),
            "{client}: {status}; plan {plan:?}; output:\n{}",
            lab.log
        );
        assert_eq!(
            lab.stdout(client).len(),
            COUNT,
            "{client}; output:\n{}",
            lab.log
        );
    }

    // Every number a Fibonacci number, none twice; gaps (numbers saved, never answered) are
    // few: at most a batch per kill.
    let known = fibonacci(3 * COUNT + 100);
    let rank = |n: &String| known.iter().position(|k| k == n);
    let mut seen = HashSet::new();
    for client in clients {
        let mut last = None;
        for number in lab.stdout(client) {
            let at = rank(number);
            assert!(
                at.is_some(),
                "{client} printed {number}: not a Fibonacci number"
            );
            assert!(
                seen.insert(number.clone()),
                "{number} printed twice; plan {plan:?}"
            );
            assert!(at > last, "{client} printed {number} after a later number");
            last = at;
        }
    }
    assert_eq!(seen.len(), 3 * COUNT);
    // The last server still stops cleanly.
    lab.terminate(&server);
    assert!(lab.wait_exit(&server, PATIENCE).success(), "{}", lab.log);
}

#[test]
fn a_clean_stop_and_start_goes_on_with_no_gap() {
    let (_dir, data, mut lab) = fresh();
    let data = data.as_str();
    let mut printed = Vec::new();
    for run in 1..=2 {
        let (server, addr) = start_server(&mut lab, &format!("server-{run}"), "127.0.0.1:0", data);
        let client = format!("client-{run}");
        lab.spawn(&client, CLIENT, &["--server", &addr, "--count", "5"]);
        assert!(lab.wait_exit(&client, PATIENCE).success(), "{}", lab.log);
        printed.extend_from_slice(lab.stdout(&client));
        lab.terminate(&server);
        assert!(lab.wait_exit(&server, PATIENCE).success(), "{}", lab.log);
    }
    assert_eq!(printed, fibonacci(10), "output:\n{}", lab.log);
}

/// Runs fib-server on `data`, which it must refuse: returns what it said on stderr.
fn refused(lab: &mut Lab, name: &str, data: &Path) -> String {
    let data = data.to_str().unwrap();
    lab.spawn(name, SERVER, &["--listen", "127.0.0.1:0", "--data", data]);
    let status = lab.wait_exit(name, PATIENCE);
    assert!(!status.success(), "{name} started on {data}:\n{}", lab.log);
    assert!(lab.line_after(name, LISTENING).is_none(), "{}", lab.log);
    lab.stderr(name)
}

/// Asserts `stderr` names `path` and says `what`.
fn says(stderr: &str, path: &Path, what: &str) {
    let path = path.display().to_string();
    assert!(stderr.contains(&path), "{stderr:?} does not name {path}");
    assert!(stderr.contains(what), "{stderr:?} does not say {what:?}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fib.redb");
    let garbage = b"these are not the bytes of a redb database\n".repeat(200);
    std::fs::write(&db, &garbage).unwrap();
    let stderr = refused(&mut Lab::new(), "server", dir.path());
    says(&stderr, &db, "not a redb database, or it is damaged");
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "the file was changed");
}

#[test]
fn a_damaged_database_is_refused() {
    let (_dir, data, mut lab) = fresh();
    let (server, _) = start_server(&mut lab, "server", "127.0.0.1:0", &data);
    let data = Path::new(&data);
    lab.terminate(&server);
    assert!(lab.wait_exit(&server, PATIENCE).success(), "{}", lab.log);
    // Its header overwritten: redb can tell nothing from it any more.
    let db = data.join("fib.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..512].fill(0xAB);
    std::fs::write(&db, &bytes).unwrap();
    says(&refused(&mut lab, "again", data), &db, "it is damaged");
}

#[test]
fn another_programs_database_or_directory_is_refused() {
    use redb::TableDefinition;
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();

    // A redb database, but not fib-server's.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let db = other.join("fib.redb");
    let accounts = TableDefinition::<&str, u64>::new("accounts");
    write_table(&db, accounts, "ann", 10);
    says(&refused(&mut lab, "other", &other), &db, "not fib-server's");

    // fib-server's, in a format version this one does not read.
    let newer = dir.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    let db = newer.join("fib.redb");
    let meta = TableDefinition::<&str, &str>::new("meta");
    write_table(&db, meta, "program", "pbrs fib-server");
    write_table(&db, meta, "version", "2");
    says(
        &refused(&mut lab, "newer", &newer),
        &db,
        "format version \"2\"",
    );

    // Another program's files, and no fib.redb: not taken over.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("users.toml"), "ann = 1\n").unwrap();
    says(
        &refused(&mut lab, "files", &files),
        &files,
        "holds other files but no fib.redb",
    );
    assert!(!files.join("fib.redb").exists());
}

/// Writes `key` → `value` into `table` of the redb database at `path` (created if need be).
fn write_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    path: &Path,
    table: redb::TableDefinition<K, V>,
    key: K::SelfType<'_>,
    value: V::SelfType<'_>,
) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_data_directory_in_use_is_refused() {
    let (_dir, data, mut lab) = fresh();
    let (_server, _) = start_server(&mut lab, "first", "127.0.0.1:0", &data);
    let data = Path::new(&data);
    let stderr = refused(&mut lab, "second", data);
    says(&stderr, &data.join("fib.redb"), "in use by another process");
}
