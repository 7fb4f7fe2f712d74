//! Default bodies of one expression: `#[remote]` must not wrap them in braces of its own, which
//! made rustc warn about unused braces and suggest a fix that does not compile.
#![deny(unused_braces)]

use rpc_core::remote;

/// Greets.
#[remote]
pub trait Greeter {
    /// One expression using an argument.
    async fn remote_greet(&self, name: String) -> String { format!("hi {name}") }
    /// One expression, no argument.
    async fn remote_hello(&self) -> String { format!("hello") }
    /// One literal.
    async fn remote_answer(&self) -> u32 { 42 }
}

struct Polite;

impl Greeter for Polite {}

fn main() {
    let greeter = GreeterRef::new(Polite);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(greeter.greet("ann".into()).await.unwrap(), "hi ann");
        assert_eq!(greeter.hello().await.unwrap(), "hello");
        assert_eq!(greeter.answer().await.unwrap(), 42);
    });
}
