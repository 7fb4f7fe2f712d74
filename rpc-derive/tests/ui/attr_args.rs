use rpc_core::remote;

#[remote(Calculator)]
pub trait Calculator {
    async fn remote_add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
