use rpc_core::remote;

pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[remote]
pub trait Geometry {
    async fn remote_origin(&self) -> Point;
}

fn main() {}
