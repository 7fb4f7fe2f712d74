use rpc_core::remote;

#[remote]
pub trait Greeter {
    async fn remote_greet(&self, name: impl Into<String>) -> String;
}

fn main() {}
