use rpc_core::remote;

#[remote]
pub trait Storage {
    async fn remote_store<T: serde::Serialize>(&self, value: T) -> bool;
}

fn main() {}
