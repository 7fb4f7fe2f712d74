use rpc_core::remote;

#[remote]
pub trait Calculator {
    fn remote_add(&self, a: i64, b: i64) -> i64;
}

fn main() {}
