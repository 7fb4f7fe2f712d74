//! [`FrameReader`]: frames from the read half of a transport, with the limits a peer must not
//! be able to get around.
//!
//! Framing is [`LengthDelimitedCodec`]'s (a 4-byte big-endian length, at most
//! `max_frame_length`); this module only decides *when* to read:
//!
//! - **Frame timer.** Once the first byte of a frame has arrived (even only part of its
//!   length header), the rest must follow within `frame_timeout`, or the read fails. A frame
//!   that stops after its header (the codec has consumed it and reserved the announced length)
//!   is still a frame in progress.
//! - **Memory budget.** When a frame's header announces its length and the frame has not fully
//!   arrived, that length is charged to the server's [`MemoryBudget`] until it has. A large
//!   frame (over [`LARGE_FRAME`] bytes) waits, without reading further, while the budget is
//!   spent; small frames are always read. The frame timer stops meanwhile (nothing is read,
//!   so the wait holds no memory) and restarts once there is room.
//!
//! Reading is cancel safe: every piece of state lives in the reader, so a
//! [`next_frame`](FrameReader::next_frame) future may be dropped and made again (the
//! connection's read loop drops it when the connection closes while it waits). That loop takes
//! the frames already buffered with [`buffered_frame`](FrameReader::buffered_frame), polls a
//! `next_frame` future once to tell whether a burst has ended, and then waits on that same
//! future.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use metrics::Counter;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use super::budget::{LARGE_FRAME, MemoryBudget};
use crate::codec;

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer broke the framing rules (oversize frame, too slow, stopped mid-frame).
    Protocol(String),
    /// The transport failed.
    Transport(io::Error),
}

/// Reads frames from `R`; see the module docs.
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    codec: LengthDelimitedCodec,
    max_frame: usize,
    frame_timeout: Duration,
    memory: Arc<MemoryBudget>,
    /// The announced length of the frame in progress, once its header has been seen and the
    /// frame was found incomplete (charged to `memory` until the frame is complete).
    in_progress: Option<usize>,
    /// A large frame whose header has arrived waits for this much room in `memory`.
    waiting_for_budget: Option<usize>,
    /// When the first byte of the frame in progress arrived.
    started: Option<Instant>,
    eof: bool,
    /// Counts the bytes read (a no-op counter unless set).
    received: Counter,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(
        io: R,
        max_frame: usize,
        frame_timeout: Duration,
        memory: Arc<MemoryBudget>,
    ) -> Self {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(8 * 1024),
            codec: codec::frame_codec(max_frame),
            max_frame,
            frame_timeout,
            memory,
            in_progress: None,
            waiting_for_budget: None,
            started: None,
            eof: false,
            received: Counter::noop(),
        }
    }

    /// Counts the bytes read from now on in `received`.
    pub(crate) fn count_received(&mut self, received: Counter) {
        self.received = received;
    }

    /// The next frame's payload; `None` at a clean end of stream.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<BytesMut>, ReadError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(Some(frame));
            }
            if self.eof {
                return if self.buf.is_empty() && self.in_progress.is_none() {
                    Ok(None)
                } else {
                    Err(ReadError::Protocol(
                        "the peer closed the connection in the middle of a frame".into(),
                    ))
                };
            }
            if let Some(wanted) = self.waiting_for_budget {
                // Nothing more is read meanwhile, so the wait holds no memory: the frame timer
                // stops, and the frame gets its whole time once there is room for it (an
                // honest large call is not cut off because others filled the budget).
                let memory = Arc::clone(&self.memory);
                memory.wait_until(|| memory.try_charge(wanted)).await;
                self.waiting_for_budget = None;
                self.in_progress = Some(wanted);
                self.started = Some(Instant::now());
                continue;
            }
            if self.started.is_none() && (!self.buf.is_empty() || self.in_progress.is_some()) {
                // Part of a frame is here (it came with the last read): its time runs.
                self.started = Some(Instant::now());
            }
            let deadline = self.started.map(|s| s + self.frame_timeout);
            let step = self.read_more();
            let stepped = match deadline {
                None => step.await,
                Some(deadline) => match tokio::time::timeout_at(deadline, step).await {
                    Ok(stepped) => stepped,
                    Err(_) => {
                        return Err(ReadError::Protocol(format!(
                            "a frame took longer than {:?} to arrive",
                            self.frame_timeout
                        )));
                    }
                },
            };
            stepped.map_err(ReadError::Transport)?;
        }
    }

    /// The length announced by the header at the front of the buffer, if the codec has not
    /// consumed it yet and it is all there.
    pub(crate) fn announced(&self) -> Option<usize> {
        (self.in_progress.is_none() && self.buf.len() >= 4)
            .then(|| (&self.buf[..4]).get_u32() as usize)
    }

    /// A frame already read, if one is complete in the buffer: no read, and no future to
    /// make (the reader takes the frames of a burst this way, then calls
    /// [`next_frame`](Self::next_frame) once the buffer has none).
    pub(crate) fn buffered_frame(&mut self) -> Result<Option<BytesMut>, ReadError> {
        self.decode()
    }

    /// Takes a complete frame from the buffer, if there is one; charges an incomplete one.
    fn decode(&mut self) -> Result<Option<BytesMut>, ReadError> {
        if let Some(len) = self.announced()
            && len <= self.max_frame
            && self.buf.len() < 4 + len
        {
            // Incomplete: charge it until it is complete. A small frame is charged whatever
            // the budget says; a large one waits for room (in `next_frame`).
            if len <= LARGE_FRAME {
                self.memory.charge(len);
            } else if !self.memory.try_charge(len) {
                self.waiting_for_budget = Some(len);
                return Ok(None);
            }
            self.waiting_for_budget = None;
            self.in_progress = Some(len);
        }
        match self.codec.decode(&mut self.buf) {
            Ok(Some(frame)) => {
                if let Some(charged) = self.in_progress.take() {
                    self.memory.release(charged);
                }
                // The next frame's timer starts when it is found incomplete (see `next_frame`),
                // not here: frames pipelined in one read cost no clock read each.
                self.started = None;
                Ok(Some(frame))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(ReadError::Protocol(format!(
                "the peer sent a frame over the {}-byte limit ({e})",
                self.max_frame
            ))),
        }
    }

    /// Reads whatever the transport has (waiting for at least one byte).
    async fn read_more(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        let n = self.io.read_buf(&mut self.buf).await?;
        self.received.increment(n as u64);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

impl<R> Drop for FrameReader<R> {
    fn drop(&mut self) {
        if let Some(charged) = self.in_progress.take() {
            self.memory.release(charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn frames_in_pieces_and_a_clean_end() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let memory = MemoryBudget::new(1 << 20);
        let mut reader = FrameReader::new(rx, 1 << 20, Duration::from_secs(10), memory.clone());
        let mut bytes = frame(b"hello");
        bytes.extend(frame(&[7; 300]));
        tokio::spawn(async move {
            for piece in bytes.chunks(3) {
                tx.write_all(piece).await.unwrap();
            }
        });
        assert_eq!(&reader.next_frame().await.unwrap().unwrap()[..], b"hello");
        assert_eq!(reader.next_frame().await.unwrap().unwrap().len(), 300);
        assert!(reader.next_frame().await.unwrap().is_none());
        assert_eq!(memory.in_use(), 0);
        assert_eq!(memory.peak(), 300, "the incomplete frame was charged");
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_that_stops_after_its_header_times_out() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let memory = MemoryBudget::new(1 << 20);
        let mut reader = FrameReader::new(rx, 1 << 20, Duration::from_secs(1), memory.clone());
        tx.write_all(&1000u32.to_be_bytes()).await.unwrap();
        let err = reader.next_frame().await.unwrap_err();
        assert!(matches!(err, ReadError::Protocol(m) if m.contains("longer than")));
        drop(reader);
        assert_eq!(memory.in_use(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_frame_waits_for_the_budget() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let memory = MemoryBudget::new(300 * 1024);
        memory.charge(200 * 1024); // held by another connection
        let mut reader = FrameReader::new(rx, 1 << 20, Duration::from_secs(60), memory.clone());
        tx.write_all(&frame(&[1; 200 * 1024])).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), reader.next_frame()).await;
        assert!(
            read.is_err(),
            "read a large frame with no room in the budget"
        );
        memory.release(200 * 1024);
        let frame = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(frame.len(), 200 * 1024);
        assert_eq!(memory.in_use(), 0);
    }

    #[tokio::test]
    async fn an_oversize_frame_is_a_protocol_error() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let memory = MemoryBudget::new(1 << 20);
        let mut reader = FrameReader::new(rx, 1024, Duration::from_secs(10), memory);
        tx.write_all(&5000u32.to_be_bytes()).await.unwrap();
        assert!(matches!(
            reader.next_frame().await.unwrap_err(),
            ReadError::Protocol(m) if m.contains("1024-byte limit")
        ));
    }
}
