use rpc_core::remote;

#[remote]
pub trait Memory {
    async unsafe fn remote_poke(&self, address: usize, value: u8);
}

fn main() {}
