use rpc_core::remote;

#[remote]
pub trait Geometry {
    async fn remote_distance(&self, (x, y): (f64, f64)) -> f64;
}

fn main() {}
