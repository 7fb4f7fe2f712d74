use rpc_core::remote;

#[remote]
pub trait Greeter {
    async fn remote_name(&self) -> impl std::fmt::Display;
}

fn main() {}
