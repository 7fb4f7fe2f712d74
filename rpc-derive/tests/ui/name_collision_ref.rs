use rpc_core::remote;

// Names of `rpc_core::RemoteRef`'s provided methods and of the generated `with_timeout`.
#[remote]
pub trait Session {
    async fn remote_with_timeout(&self, ms: u64);
    async fn remote_peer(&self) -> String;
    async fn remote_is_local(&self) -> bool;
    async fn remote_same_object(&self, other: u64) -> bool;
}

fn main() {}
