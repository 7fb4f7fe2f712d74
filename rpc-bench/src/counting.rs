//! Cheap counters for the figures per call: write syscalls, through a wrapper around a
//! socket, and heap allocations, through a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The heap allocations so far in this process, on every thread (`alloc`, `alloc_zeroed`
/// and `realloc` calls).
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// The system allocator, counting allocations (one relaxed atomic add per call).
pub(crate) struct CountingAlloc;

// The only unsafe code of the workspace (rpc-bench's Cargo.toml says why it is allowed here):
// a global allocator must implement the unsafe trait; every call is forwarded to `System`
// with the caller's own arguments, so `System`'s contract is the caller's.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}
