//! The physical baseline: a `LengthDelimitedCodec` echo of an 8-byte frame holding the ping's
//! value, with a client that keeps 64 frames in flight by hand and flushes once per burst, as
//! does its server.

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{accept, check, connect, listen};
use crate::counting::{CountingStream, WriteCounters};
use crate::harness::{IN_FLIGHT, PAYLOAD, Subject};

type Transport = Framed<CountingStream<TcpStream>, LengthDelimitedCodec>;

/// The frame the raw echo sends: [`PAYLOAD`], big-endian.
const FRAME: [u8; 8] = PAYLOAD.to_be_bytes();

/// Checks an echoed frame.
fn check_frame(frame: &[u8]) {
    let value = frame.try_into().map(u64::from_be_bytes);
    check(value.expect("the echo is not 8 bytes long"));
}

/// The raw echo's client.
pub(crate) struct RawEcho {
    framed: Transport,
    writes: WriteCounters,
}

/// Starts a raw echo server and connects to it.
pub(crate) async fn start() -> RawEcho {
    let (listener, addr) = listen().await;
    let writes = WriteCounters::default();
    tokio::spawn(serve(listener, writes.clone()));
    let stream = connect(addr, writes.client.clone()).await;
    RawEcho {
        framed: Framed::new(stream, LengthDelimitedCodec::new()),
        writes,
    }
}

impl Subject for RawEcho {
    const SHARED_CLIENT: bool = false;

    async fn round_trip(&mut self) {
        self.framed.send(Bytes::from_static(&FRAME)).await.unwrap();
        check_frame(&self.framed.next().await.unwrap().unwrap());
    }

    /// Not `buffer_unordered`, which a framed stream has no way to do, but its equivalent:
    /// 64 frames in flight, one sent for each echo received, flushed once per burst.
    async fn buffered(&mut self, total: usize) {
        let framed = &mut self.framed;
        let mut sent = 0;
        while sent < IN_FLIGHT.min(total) {
            framed.feed(Bytes::from_static(&FRAME)).await.unwrap();
            sent += 1;
        }
        SinkExt::<Bytes>::flush(framed).await.unwrap();
        let mut received = 0;
        while received < total {
            // Wait for one echo, take every other one already here, send as many, flush once.
            let mut echo = framed.next().await;
            loop {
                check_frame(&echo.unwrap().unwrap());
                received += 1;
                if sent < total {
                    framed.feed(Bytes::from_static(&FRAME)).await.unwrap();
                    sent += 1;
                }
                match framed.next().now_or_never() {
                    Some(next) => echo = next,
                    None => break,
                }
            }
            SinkExt::<Bytes>::flush(framed).await.unwrap();
        }
    }

    async fn tasks(&mut self, _total: usize) {
        unreachable!("a framed stream cannot be shared between tasks");
    }

    fn writes(&self) -> Option<&WriteCounters> {
        Some(&self.writes)
    }
}

/// The raw echo server: echoes the frames of one connection, flushing once per burst of
/// readable frames.
async fn serve(listener: TcpListener, writes: WriteCounters) {
    let stream = accept(&listener, writes.server).await;
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    while let Some(Ok(frame)) = framed.next().await {
        if framed.feed(frame.freeze()).await.is_err() {
            return;
        }
        loop {
            match framed.next().now_or_never() {
                Some(Some(Ok(frame))) => {
                    if framed.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                }
                Some(_) => return,
                None => break,
            }
        }
        if SinkExt::<Bytes>::flush(&mut framed).await.is_err() {
            return;
        }
    }
}
