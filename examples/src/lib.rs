//! Small runnable pbrs programs, each one a file under `examples/`; every one terminates by
//! itself. Run one with `cargo run -p examples --example <name>`:
//!
//! - `hello`: the README's hello world.
//! - `calculator`: the seed's calculator, three servers on three ports and one client that
//!   spreads calls over them and totals the results with `join_all` / `try_join_all`.
//! - `callbacks`: the client passes a local object to the server, which calls it back; the
//!   reference handed back arrives as the client's own object.
//! - `weblog`: clients subscribe watcher objects and the server pushes records to all of
//!   them; a client that leaves is dropped without disturbing the others.
//! - `blocking`: the blocking facade, for a program without an async runtime.
//!
//! Two binaries make a stateful service that runs until stopped (see [`fib`]):
//! `cargo run -p examples --bin fib-server -- --data fib-data` serves distinct Fibonacci
//! numbers, saved durably before they are answered, and `cargo run -p examples --bin
//! fib-client -- --count 10` takes some; `cargo run --release -p examples --example
//! fib_bench` measures how many the server hands out per second.

pub mod fib;
