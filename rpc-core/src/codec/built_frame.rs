//! Where a frame is built, and what holds it until it is queued.
//!
//! Every thread keeps scratch memory that frames are built in one after another
//! ([`build_frame`]). A frame of at most [`INLINE_CAPACITY`] bytes (a small call or answer, a
//! cancel, a decref: most frames) is then copied out into a [`BuiltFrame`] of its own, a few
//! dozen bytes kept in place, and the scratch memory is used again for the next frame as it is.
//! A longer frame is carved out of the scratch memory instead, as a [`Bytes`] that shares it.
//!
//! Why not carve every frame: a carved frame counts itself in the scratch memory's shared
//! count, with a locked instruction, and counts itself out when dropped, with another. A small
//! frame is copied into its queue anyway (`io::frame_queue`), so for it the count buys
//! nothing; copying a few dozen bytes twice costs less than those two locked instructions.

use bytes::{Bytes, BytesMut};

/// The memory frames are built in: each thread keeps a buffer of this many bytes and carves
/// frames longer than [`INLINE_CAPACITY`] out of it one after another, so building a frame
/// allocates nothing (a new buffer once per this many bytes carved, or none when every frame
/// carved from the last one is gone by then). A frame longer than this has an allocation of
/// (about) its own.
pub(crate) const SCRATCH_CAPACITY: usize = 16 * 1024;

/// The longest frame a [`BuiltFrame`] holds in place: chosen so that it takes 40 bytes, 8
/// more than a [`Bytes`] (a call's future holds its frame until its first poll, and is moved
/// about whole).
pub(crate) const INLINE_CAPACITY: usize = 38;

thread_local! {
    /// `None` until first used (a `const` thread-local needs no first-use check on each use,
    /// and `BytesMut::new` is not `const`).
    static SCRATCH: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
}

/// A frame's bytes (without its length prefix), as built: in place when short, else carved
/// out of scratch memory (or any other [`Bytes`]).
#[derive(Clone)]
pub(crate) enum BuiltFrame {
    /// A frame of `len` bytes, at most [`INLINE_CAPACITY`].
    Inline {
        len: u8,
        bytes: [u8; INLINE_CAPACITY],
    },
    /// A longer frame.
    Shared(Bytes),
}

const _: () = assert!(INLINE_CAPACITY <= u8::MAX as usize);

impl BuiltFrame {
    /// `frame` in place, if it is short enough.
    fn inline(frame: &[u8]) -> Option<BuiltFrame> {
        let len = frame.len();
        let mut bytes = [0; INLINE_CAPACITY];
        bytes.get_mut(..len)?.copy_from_slice(frame);
        Some(BuiltFrame::Inline {
            len: len as u8,
            bytes,
        })
    }

    /// Its bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            BuiltFrame::Inline { len, bytes } => &bytes[..usize::from(*len)],
            BuiltFrame::Shared(bytes) => bytes,
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            BuiltFrame::Inline { len, .. } => usize::from(*len),
            BuiltFrame::Shared(bytes) => bytes.len(),
        }
    }

    /// Its bytes as a [`Bytes`] (copied, if they were in place).
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            BuiltFrame::Inline { .. } => Bytes::copy_from_slice(self.as_slice()),
            BuiltFrame::Shared(bytes) => bytes,
        }
    }

    /// The frame, holding no more memory than its own: a frame carved out of scratch memory
    /// is copied out of it (it would keep the whole buffer alive).
    pub(crate) fn detached(self) -> BuiltFrame {
        match self {
            BuiltFrame::Shared(bytes) if bytes.len() < SCRATCH_CAPACITY => {
                BuiltFrame::Shared(Bytes::copy_from_slice(&bytes))
            }
            other => other,
        }
    }
}

impl Default for BuiltFrame {
    /// An empty frame.
    fn default() -> Self {
        BuiltFrame::Inline {
            len: 0,
            bytes: [0; INLINE_CAPACITY],
        }
    }
}

impl From<Bytes> for BuiltFrame {
    fn from(bytes: Bytes) -> Self {
        BuiltFrame::Shared(bytes)
    }
}

/// Runs `build` on an empty buffer in this thread's scratch memory (see [`SCRATCH_CAPACITY`])
/// and returns its result and what it wrote, in place if it is short enough (see the module
/// docs). A panic in `build` loses only the scratch buffer; a `build` that itself builds a
/// frame gets a buffer of its own.
pub(crate) fn build_frame<R>(build: impl FnOnce(&mut BytesMut) -> R) -> (R, BuiltFrame) {
    let mut scratch = SCRATCH.take().unwrap_or_default();
    if scratch.capacity() < SCRATCH_CAPACITY / 4 {
        // Reclaims the whole buffer in place when nothing carved from it is alive any more.
        scratch.reserve(SCRATCH_CAPACITY);
    }
    let result = build(&mut scratch);
    let frame = match BuiltFrame::inline(&scratch) {
        Some(inline) => {
            scratch.clear();
            inline
        }
        None => BuiltFrame::Shared(scratch.split().freeze()),
    };
    if scratch.capacity() > 4 * SCRATCH_CAPACITY {
        // What a large frame left over: not kept for ever by this thread.
        scratch = BytesMut::new();
    }
    SCRATCH.set(Some(scratch));
    (result, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_kept_in_place_up_to_its_capacity_and_carved_past_it() {
        for len in [
            0,
            1,
            INLINE_CAPACITY - 1,
            INLINE_CAPACITY,
            INLINE_CAPACITY + 1,
            5000,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ((), frame) = build_frame(|buf| buf.extend_from_slice(&bytes));
            assert_eq!(frame.as_slice(), &bytes[..], "{len} bytes");
            assert_eq!(frame.len(), len);
            assert_eq!(
                matches!(frame, BuiltFrame::Inline { .. }),
                len <= INLINE_CAPACITY,
                "{len} bytes"
            );
            assert_eq!(&frame.clone().into_bytes()[..], &bytes[..]);
            assert_eq!(frame.detached().as_slice(), &bytes[..]);
        }
        assert_eq!(std::mem::size_of::<BuiltFrame>(), 40);
    }

    #[test]
    fn the_scratch_memory_an_inline_frame_was_built_in_serves_the_next_frame() {
        let ((), first) = build_frame(|buf| buf.extend_from_slice(b"first"));
        let before = SCRATCH.take().expect("built in");
        let at = before.as_ptr();
        SCRATCH.set(Some(before));
        let ((), second) = build_frame(|buf| {
            assert_eq!(
                buf.as_ptr(),
                at,
                "the same memory, not a part carved after it"
            );
            buf.extend_from_slice(b"second");
        });
        assert_eq!(first.as_slice(), b"first");
        assert_eq!(second.as_slice(), b"second");
    }

    #[test]
    fn a_carved_frame_detached_holds_memory_of_its_own() {
        let long = vec![9u8; 100];
        let ((), frame) = build_frame(|buf| buf.extend_from_slice(&long));
        let BuiltFrame::Shared(carved) = &frame else {
            panic!("100 bytes are carved");
        };
        let carved_at = carved.as_ptr();
        let BuiltFrame::Shared(detached) = frame.clone().detached() else {
            panic!("still shared");
        };
        assert_ne!(detached.as_ptr(), carved_at);
        assert_eq!(&detached[..], &long[..]);
    }
}
