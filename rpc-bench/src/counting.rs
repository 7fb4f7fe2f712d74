//! Cheap counters for the figures per call: write syscalls, through a wrapper around a
//! socket, and heap allocations, through a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A transport that counts its writes: every `poll_write` or `poll_write_vectored` that wrote
/// something, which on a `TcpStream` is one `write`/`writev`/`sendto` syscall. Flushing a
/// `TcpStream` is no syscall, so `poll_flush` is not counted.
pub(crate) struct CountingStream<T> {
    inner: T,
    writes: Arc<AtomicU64>,
}

impl<T> CountingStream<T> {
    /// Wraps `inner`, adding each write it does to `writes`.
    pub(crate) fn new(inner: T, writes: Arc<AtomicU64>) -> CountingStream<T> {
        CountingStream { inner, writes }
    }

    /// The socket split without a lock into its read half and its write half, the writes of
    /// the write half still counted.
    pub(crate) fn into_split(self) -> (OwnedReadHalf, CountingStream<OwnedWriteHalf>)
    where
        T: Into<TcpStream>,
    {
        let (reader, writer) = self.inner.into().into_split();
        (reader, CountingStream::new(writer, self.writes))
    }

    fn count<E>(&self, polled: Poll<Result<usize, E>>) -> Poll<Result<usize, E>> {
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The write counters of one subject's connection, client side and server side.
#[derive(Clone, Default)]
pub(crate) struct WriteCounters {
    /// Writes by the client's socket.
    pub(crate) client: Arc<AtomicU64>,
    /// Writes by the server's socket.
    pub(crate) server: Arc<AtomicU64>,
}

impl WriteCounters {
    /// The writes so far, `(client, server)`.
    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.client.load(Ordering::Relaxed),
            self.server.load(Ordering::Relaxed),
        )
    }
}

/// Threads that count their allocations in a slot of their own ([`SLOTS`]); later threads
/// share [`SHARED`].
const THREAD_SLOTS: usize = 256;

/// One thread's allocations, alone on its cache line: only that thread adds to it, so an add
/// is a plain load and store, with no locked instruction. A locked add costs about 9 ns on
/// the 2-core VM, as much as a hundred other instructions: a shared counter would add that to
/// every allocation of the subjects that allocate (tarpc's ten per call), and so would distort
/// the throughput it is there to explain.
#[repr(align(64))]
struct Slot(AtomicU64);

static SLOTS: [Slot; THREAD_SLOTS] = [const { Slot(AtomicU64::new(0)) }; THREAD_SLOTS];

/// The slots given out so far.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The allocations of threads past the first [`THREAD_SLOTS`] (a locked add each).
static SHARED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's slot in [`SLOTS`], [`UNASSIGNED`] before its first allocation. A `const`
    /// thread-local without a destructor: reading it never allocates and never fails, also
    /// while the thread exits.
    static MY_SLOT: Cell<usize> = const { Cell::new(UNASSIGNED) };
}

const UNASSIGNED: usize = usize::MAX;

/// Counts one allocation of this thread.
#[inline(never)]
fn count_allocation() {
    match SLOTS.get(MY_SLOT.get()) {
        Some(Slot(count)) => count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
        None => count_elsewhere(),
    }
}

/// Counts an allocation of a thread without a slot: gives it one, if any is left.
#[cold]
#[inline(never)]
fn count_elsewhere() {
    if MY_SLOT.get() == UNASSIGNED {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        MY_SLOT.set(slot);
        if let Some(Slot(count)) = SLOTS.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    SHARED.fetch_add(1, Ordering::Relaxed);
}

/// The heap allocations so far in this process, on every thread (`alloc`, `alloc_zeroed`
/// and `realloc` calls). An allocation on another thread at the same moment may be missed.
pub(crate) fn allocations() -> u64 {
    let given = NEXT_SLOT.load(Ordering::Relaxed).min(THREAD_SLOTS);
    let own: u64 = SLOTS[..given]
        .iter()
        .map(|Slot(count)| count.load(Ordering::Relaxed))
        .sum();
    own + SHARED.load(Ordering::Relaxed)
}

/// The system allocator, counting allocations (an add to the thread's own counter per call).
pub(crate) struct CountingAlloc;

// The only unsafe code of the workspace (rpc-bench's Cargo.toml says why it is allowed here):
// a global allocator must implement the unsafe trait; every call is forwarded to `System`
// with the caller's own arguments, so `System`'s contract is the caller's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
