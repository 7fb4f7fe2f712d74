use rpc_core::remote;

// Every mistake of the trait is reported at once.
#[remote]
pub trait Calculator {
    fn remote_add(&self, a: i64, b: i64) -> i64;
    async fn remote_sub(&mut self, a: &i64, b: i64) -> i64;
    async fn remote_mul<T>(&self, a: T) -> &str;
    fn helper(&self, x: &str) -> &str; // not remote: anything goes
}

fn main() {}
