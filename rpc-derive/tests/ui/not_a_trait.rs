use rpc_core::remote;

#[remote]
pub struct Calculator {
    total: i64,
}

fn main() {}
