//! Small runnable pbrs programs, each one a file under `examples/`; every one terminates by
//! itself. Run one with `cargo run -p examples --example <name>`:
//!
//! - `calculator`: the seed's calculator, three servers on three ports and one client that
//!   spreads calls over them and totals the results with `join_all` / `try_join_all`.
