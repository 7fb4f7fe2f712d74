use rpc_core::remote;

pub trait Calculator {
    #[remote]
    async fn remote_add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
