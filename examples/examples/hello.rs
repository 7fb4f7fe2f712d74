//! The README's hello world: `cargo run -p examples --example hello`.

use rpc_core::{CallError, Client, Server, remote};

#[remote]
trait Greeter {
    /// Only `remote_*` methods are callable from the network.
    async fn remote_greet(&self, name: String) -> String;
}

struct Hello;
impl Greeter for Hello {
    async fn remote_greet(&self, name: String) -> String {
        format!("hello, {name}")
    }
}

#[tokio::main]
async fn main() -> Result<(), CallError> {
    let server = Server::bind("127.0.0.1:0", GreeterRef::new(Hello)).await?;
    let addr = server.local_addr();
    tokio::spawn(server.run());
    let greeter: GreeterRef = Client::connect(addr).await?.root().await?;
    println!("{}", greeter.greet("world".into()).await?); // the proxy drops `remote_`
    Ok(())
}
