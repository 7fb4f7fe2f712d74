use std::future::Future;

use rpc_core::remote;

#[remote]
pub trait Calculator {
    fn remote_add(&self, a: i64, b: i64) -> impl Future<Output = i64> + Send;
}

fn main() {}
