use rpc_core::remote;

#[remote]
pub trait Store<T> {
    async fn remote_len(&self) -> usize;
}

fn main() {}
