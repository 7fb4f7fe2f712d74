use rpc_core::remote;

#[remote]
pub trait Memory {
    async extern "C" fn remote_peek(&self, address: usize) -> u8;
}

fn main() {}
