use rpc_core::remote;

#[remote]
pub trait Node {
    async fn remote_child(&self, index: usize) -> Box<Self>;
}

fn main() {}
