use rpc_core::remote;

#[remote]
pub trait Session {
    async fn remote_close(self: Box<Self>);
}

fn main() {}
