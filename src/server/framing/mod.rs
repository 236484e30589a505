//! Follows HTTP/1 message framing in the bytes a client sends, to see what hyper hides.
//!
//! hyper reads a request with both `Content-Length` and `Transfer-Encoding` as chunked and
//! drops the `Content-Length`, and it keeps only one of two equal `Content-Length`s, so the
//! service cannot tell these smuggling shapes from ordinary requests. [`FramingScan`] walks
//! the inbound stream as hyper does (heads, fixed-length bodies, chunked bodies) and marks
//! the first head carrying either shape in the connection's [`Framing`], which
//! [`super::hygiene`] consults for each request. It never changes, holds or copies a byte.
//! It stops following (fails open) at anything hyper itself rejects, at HTTP/2's preface
//! and once the connection is upgraded.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod scan;

pub use self::scan::FramingScan;

/// What one connection's scan found, shared with its service.
pub struct Framing {
    /// Ordinal of the first head with a hidden smuggling shape (`u64::MAX`: none yet).
    flagged: AtomicU64,
    /// Requests handed to the service so far.
    served: AtomicU64,
    /// Set once a response switched protocols: no more HTTP/1 follows.
    upgraded: AtomicBool,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            flagged: AtomicU64::new(u64::MAX),
            served: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
        }
    }
}

impl Framing {
    /// Count the next request handed to the service; true when its head (or an earlier
    /// one on this connection) had both framing headers or repeated `Content-Length`.
    pub fn next_request_is_flagged(&self) -> bool {
        let ordinal = self.served.fetch_add(1, Ordering::Relaxed);
        ordinal >= self.flagged.load(Ordering::Acquire)
    }

    /// The connection switched protocols; stop following it.
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Acquire)
    }

    fn flag(&self, ordinal: u64) {
        self.flagged.fetch_min(ordinal, Ordering::AcqRel);
    }
}

/// A stream whose inbound bytes a [`FramingScan`] follows on their way to hyper.
pub struct ScannedIo<I> {
    inner: I,
    scan: FramingScan,
    framing: Arc<Framing>,
}

impl<I> ScannedIo<I> {
    pub fn new(inner: I, framing: Arc<Framing>) -> Self {
        Self {
            inner,
            scan: FramingScan::default(),
            framing,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ScannedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if polled.is_ready() {
            this.scan.feed(&buf.filled()[before..], &this.framing);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ScannedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
