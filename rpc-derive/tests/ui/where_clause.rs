use rpc_core::remote;

#[remote]
pub trait Storage {
    async fn remote_store(&self, value: u64) -> bool
    where
        Self: Sized;
}

fn main() {}
