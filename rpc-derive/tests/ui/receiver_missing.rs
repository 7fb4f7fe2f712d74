use rpc_core::remote;

#[remote]
pub trait Calculator {
    async fn remote_add(a: i64, b: i64) -> i64;
}

fn main() {}
