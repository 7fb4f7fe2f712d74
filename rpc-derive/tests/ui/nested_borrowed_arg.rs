use rpc_core::remote;

#[remote]
pub trait Storage {
    async fn remote_store(&self, key: u64, value: Option<&[u8]>) -> bool;
}

fn main() {}
