//! The most arguments a remote method can take: 16, the longest tuple serde encodes.

use rpc_core::{RemoteRef, remote};

/// Sums its arguments.
#[remote]
pub trait Sum {
    /// Sixteen arguments.
    #[allow(clippy::too_many_arguments)]
    async fn remote_sum(
        &self,
        a1: u8, a2: u8, a3: u8, a4: u8, a5: u8, a6: u8, a7: u8, a8: u8,
        a9: u8, a10: u8, a11: u8, a12: u8, a13: u8, a14: u8, a15: u8, a16: u8,
    ) -> u32 {
        [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16]
            .into_iter()
            .map(u32::from)
            .sum()
    }
}

struct Adder;

impl Sum for Adder {}

fn main() {
    let sum = SumRef::new(Adder);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let direct = sum.sum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
        assert_eq!(direct.await.unwrap(), 136);
        // Encoded and decoded, as a peer's call would be.
        let args = (1u8, 2u8, 3u8, 4u8, 5u8, 6u8, 7u8, 8u8, 9u8, 10u8, 11u8, 12u8, 13u8, 14u8, 15u8, 16u8);
        let encoded = sum.object().call_remote::<_, u32>("sum", args);
        assert_eq!(encoded.await.unwrap(), 136);
    });
}
