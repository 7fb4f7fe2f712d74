use rpc_core::remote;

#[remote]
pub trait Factory {
    async fn remote_new(&self, name: String) -> u64;
}

fn main() {}
