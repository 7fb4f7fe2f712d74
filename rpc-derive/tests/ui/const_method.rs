use rpc_core::remote;

#[remote]
pub trait Limits {
    const fn remote_max(&self) -> u32;
}

fn main() {}
