//! The frames queued for one socket, in the shape a write wants them.
//!
//! A small frame is copied, length prefix first, after the small frames queued before it, so a
//! burst of them goes out as one buffer; a frame of at least [`codec::SCRATCH_CAPACITY`] bytes
//! stays where it was built, behind a prefix, and goes out with its neighbours in one vectored
//! write ([`Taken::write_some`]). Measured on this machine, a `writev` of 64 slices of 40
//! bytes costs about 6 µs more than a `write` of the same 2,560 bytes in one slice, while
//! copying 40 bytes costs nanoseconds: for small frames, copying is the cheaper way to gather
//! them. (Frames are built in scratch memory shared by many small frames, `codec::build_frame`;
//! a frame that size has an allocation of about its own, so chaining it keeps no more memory
//! alive than it counts.) The buffer of small frames a writer takes changes places with the
//! writer's empty one ([`FrameQueue::take_into`]): two buffers serve turn about, never shared.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use crate::codec::{self, BuiltFrame};

/// At most this many slices go to one vectored write.
const MAX_SLICES: usize = 64;

/// A buffer of small frames larger than this (a burst's) is dropped once written, not kept
/// for the next: two buffers serve turn about, and neither holds on to a past burst's size.
const KEEP_TAIL: usize = 64 * 1024;

/// Frames waiting for a writer, in order: `chunks`, then `tail`.
pub(super) struct FrameQueue {
    /// Runs of small frames, and large frames as they are.
    chunks: VecDeque<Bytes>,
    /// The small frames queued after the last chunk, each after its length prefix.
    tail: BytesMut,
    /// Bytes in `chunks` and `tail`.
    len: usize,
    /// The codec's maximum frame length: the peer's reader refuses longer frames.
    max_frame: usize,
}

impl FrameQueue {
    /// An empty queue of frames of at most `max_frame` bytes.
    pub(super) fn new(max_frame: usize) -> Self {
        FrameQueue {
            chunks: VecDeque::new(),
            tail: BytesMut::with_capacity(8 * 1024),
            len: 0,
            max_frame,
        }
    }

    /// Queues `frame` behind its length prefix; returns the bytes that adds. Only an
    /// oversize frame is refused.
    pub(super) fn push(&mut self, frame: BuiltFrame) -> Result<usize, String> {
        let len = frame.len();
        let oversize = || {
            format!(
                "a frame of {len} bytes is over the limit of {}",
                self.max_frame
            )
        };
        if len > self.max_frame {
            return Err(oversize());
        }
        self.tail.extend_from_slice(&codec::length_prefix(len));
        if len < codec::SCRATCH_CAPACITY {
            self.tail.extend_from_slice(frame.as_slice());
        } else {
            let small_frames = self.tail.split().freeze();
            self.chunks.push_back(small_frames);
            self.chunks.push_back(frame.into_bytes());
        }
        self.len += 4 + len;
        Ok(4 + len)
    }

    /// Queues `frames`: small frames, each already behind its length prefix (as the reader of
    /// a `current_thread` runtime gathers answers, `conn::gathered`); returns the bytes that
    /// adds. They are copied, as small frames are.
    pub(super) fn push_prefixed(&mut self, frames: &[u8]) -> usize {
        self.tail.extend_from_slice(frames);
        self.len += frames.len();
        frames.len()
    }

    /// Bytes queued.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Moves everything queued to the end of `to`. The small frames queued last change
    /// buffers with `to`'s: none is copied, and neither buffer is shared (sharing one costs a
    /// locked count per write).
    pub(super) fn take_into(&mut self, to: &mut Taken) {
        if !to.tail.is_empty() {
            to.chunks.push_back(to.tail.split().freeze());
        }
        to.chunks.append(&mut self.chunks);
        std::mem::swap(&mut self.tail, &mut to.tail);
        self.len = 0;
    }

    /// Drops everything queued (and the memory it held); returns how many bytes that was.
    pub(super) fn clear(&mut self) -> usize {
        self.chunks.clear();
        self.tail = BytesMut::new();
        std::mem::take(&mut self.len)
    }
}

/// Frames a writer took from the queue and has not written yet, in order: `chunks`, then
/// `tail`, whose buffer goes back to the queue, empty, at the next take.
#[derive(Default)]
pub(super) struct Taken {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
}

impl Taken {
    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.tail.is_empty()
    }

    /// Bytes left to write.
    pub(super) fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    /// Forgets what is left (the socket is gone).
    pub(super) fn clear(&mut self) {
        self.chunks.clear();
        self.tail.clear();
    }

    /// Writes from the front: one `write` for one chunk, else one vectored write of up to
    /// [`MAX_SLICES`] of them (on a transport that writes vectors; else the first alone).
    pub(super) fn write_some<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        sink: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let mut all = self.chunks.iter().map(|chunk| &chunk[..]).chain(tail);
        let Some(first) = all.next() else {
            return Poll::Ready(Ok(0));
        };
        let count = self.chunks.len() + usize::from(tail.is_some());
        if count == 1 || !sink.is_write_vectored() {
            return Pin::new(sink).poll_write(cx, first);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        slices[0] = IoSlice::new(first);
        let mut filled = 1;
        for (slice, chunk) in slices[1..].iter_mut().zip(all) {
            *slice = IoSlice::new(chunk);
            filled += 1;
        }
        Pin::new(sink).poll_write_vectored(cx, &slices[..filled])
    }

    /// Drops the first `n` bytes: the chunks written whole, and the start of the next.
    pub(super) fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                if n < self.tail.len() {
                    self.tail.advance(n);
                } else if self.tail.capacity() > KEEP_TAIL {
                    // A burst made it large: not kept for ever.
                    self.tail = BytesMut::new();
                } else {
                    // Kept, empty, for the queue to fill again.
                    self.tail.clear();
                }
                return;
            };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::codec::Encoder;

    use super::*;

    /// Frames of these sizes, each filled with its index.
    fn frames(sizes: &[usize]) -> Vec<Bytes> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| Bytes::from(vec![i as u8; len]))
            .collect()
    }

    /// What the codec makes of `frames`, one after the other.
    fn framed(frames: &[Bytes]) -> Vec<u8> {
        let mut codec = codec::frame_codec(usize::MAX >> 1);
        let mut out = BytesMut::new();
        for frame in frames {
            codec.encode(frame.clone(), &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn small_frames_are_gathered_and_large_ones_chained_in_order() {
        let large = codec::SCRATCH_CAPACITY;
        let frames = frames(&[10, 0, 300, large, 20, 30, large * 3, 5]);
        let mut queue = FrameQueue::new(4 << 20);
        for frame in &frames {
            queue.push(frame.clone().into()).unwrap();
        }
        let expected = framed(&frames);
        assert_eq!(queue.len(), expected.len());
        let mut taken = Taken::default();
        queue.take_into(&mut taken);
        assert_eq!(queue.len(), 0);
        assert_eq!(taken.len(), expected.len());
        // [10, 0, 300, prefix], [large], [20, 30, prefix], [large * 3], then [5] in the tail
        assert_eq!(taken.chunks.len(), 4);
        let large_chunk = &taken.chunks[1];
        assert_eq!(
            large_chunk.as_ptr(),
            frames[3].as_ptr(),
            "the large frame was copied"
        );
        let mut written = Vec::from(taken.chunks.clone()).concat();
        written.extend_from_slice(&taken.tail);
        assert_eq!(written, expected);
    }

    #[test]
    fn an_oversize_frame_is_refused_whatever_its_size() {
        for max in [100, codec::SCRATCH_CAPACITY + 10] {
            let mut queue = FrameQueue::new(max);
            assert!(queue.push(Bytes::from(vec![0; max + 1]).into()).is_err());
            assert_eq!(queue.push(Bytes::from(vec![0; max]).into()), Ok(max + 4));
        }
    }

    #[test]
    fn consume_drops_whole_chunks_and_the_start_of_the_next() {
        let mut taken = Taken {
            chunks: frames(&[3, 4]).into(),
            tail: BytesMut::from(&[7u8; 5][..]),
        };
        taken.consume(5);
        assert_eq!(taken.chunks.len(), 1);
        assert_eq!(&taken.chunks[0][..], &[1, 1]);
        taken.consume(2);
        assert!(taken.chunks.is_empty());
        taken.consume(2);
        assert_eq!(&taken.tail[..], &[7, 7, 7]);
        taken.consume(3);
        assert!(taken.is_empty());
    }

    #[test]
    fn a_take_after_an_unfinished_write_keeps_the_order_and_tails_are_reused() {
        let mut queue = FrameQueue::new(4 << 20);
        let first = frames(&[3, 4]);
        for frame in &first {
            queue.push(frame.clone().into()).unwrap();
        }
        let mut taken = Taken::default();
        queue.take_into(&mut taken);
        taken.consume(2);
        let second = frames(&[5]);
        queue.push(second[0].clone().into()).unwrap();
        queue.take_into(&mut taken);
        let mut expected = framed(&first)[2..].to_vec();
        expected.extend_from_slice(&framed(&second));
        let mut written = Vec::from(taken.chunks.clone()).concat();
        written.extend_from_slice(&taken.tail);
        assert_eq!(written, expected);
        // Written whole, the tail's buffer goes back to the queue at the next take.
        taken.consume(expected.len());
        assert!(taken.is_empty());
        let buffer = taken.tail.as_ptr();
        queue.push(Bytes::from_static(b"x").into()).unwrap();
        queue.take_into(&mut taken);
        assert_eq!(&taken.tail[..], &[0, 0, 0, 1, b'x']);
        queue.push(Bytes::from_static(b"y").into()).unwrap();
        assert_eq!(queue.tail.as_ptr(), buffer, "the buffer was not reused");
    }

    #[test]
    fn a_burst_s_large_buffer_is_not_kept_once_written() {
        let mut queue = FrameQueue::new(4 << 20);
        let mut taken = Taken::default();
        for _ in 0..200 {
            queue.push(Bytes::from(vec![1; 1000]).into()).unwrap();
        }
        queue.take_into(&mut taken);
        assert!(taken.tail.capacity() > KEEP_TAIL);
        taken.consume(taken.len());
        assert_eq!(taken.tail.capacity(), 0, "the burst's buffer was kept");
        queue.push(Bytes::from(vec![1; 1000]).into()).unwrap();
        queue.take_into(&mut taken);
        taken.consume(taken.len());
        assert!(
            taken.tail.capacity() >= 1004,
            "a small buffer is kept for the next take"
        );
    }

    #[test]
    fn clear_forgets_everything() {
        let mut queue = FrameQueue::new(4 << 20);
        queue.push(Bytes::from_static(b"abc").into()).unwrap();
        queue
            .push(Bytes::from(vec![1; codec::SCRATCH_CAPACITY]).into())
            .unwrap();
        assert_eq!(queue.clear(), 7 + 4 + codec::SCRATCH_CAPACITY);
        let mut taken = Taken::default();
        queue.take_into(&mut taken);
        assert!(taken.is_empty());
    }
}
