use rpc_core::remote;

// The `remote_` prefix is forgotten: peers could call nothing.
#[remote]
pub trait Greeter {
    async fn greet(&self, name: String) -> String;
}

fn main() {}
