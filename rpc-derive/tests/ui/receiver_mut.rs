use rpc_core::remote;

#[remote]
pub trait Counter {
    async fn remote_increment(&mut self) -> u64;
}

fn main() {}
