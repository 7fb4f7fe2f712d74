use rpc_core::remote;

#[remote]
pub trait Greeter {
    async fn remote_greet(&self, name: &str) -> String;
}

fn main() {}
