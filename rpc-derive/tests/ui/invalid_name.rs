use rpc_core::remote;

#[remote]
pub trait Calculator {
    async fn remote_self(&self) -> i64;
}

fn main() {}
