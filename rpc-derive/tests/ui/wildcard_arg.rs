use rpc_core::remote;

#[remote]
pub trait Geometry {
    async fn remote_reset(&self, _: bool);
}

fn main() {}
