use rpc_core::remote;

#[remote]
pub trait Calculator {
    async fn remote_(&self) -> i64;
}

fn main() {}
