use rpc_core::remote;

#[remote]
pub trait Store<'a> {
    async fn remote_len(&self) -> usize;
}

fn main() {}
