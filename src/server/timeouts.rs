//! Per-connection header-read and idle timeouts, enforced on the socket itself.
//!
//! hyper's own header timeout does not run while hyper-util's auto builder sniffs the
//! protocol, and it has no idle timeout, so the accepted stream is wrapped in [`TimedIo`].
//! A connection is *busy* while a request is in flight (counted by [`InFlight`], which the
//! service holds until the response body is done). When not busy it is *idle* (closed after
//! `idle_timeout`) until bytes of a new request arrive, which start the header clock
//! (closed after `header_read_timeout`). A new connection starts on the header clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection, and the connection task to wake when the last
/// one finishes (so that its idle clock starts even if hyper is not reading just then).
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle_waker: AtomicWaker,
}

impl InFlight {
    /// Count a request until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    fn busy(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }
}

/// Holds a connection busy; dropped when the response is finished (or abandoned).
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_waker.wake();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers,
    Busy,
    Idle,
}

/// An IO stream that times out slow headers and idle keep-alive connections.
pub struct TimedIo<I> {
    inner: I,
    in_flight: Arc<InFlight>,
    header_timeout: Duration,
    idle_timeout: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
}

impl<I> TimedIo<I> {
    pub fn new(
        inner: I,
        in_flight: Arc<InFlight>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            in_flight,
            header_timeout,
            idle_timeout,
            phase: Phase::Headers,
            deadline: Box::pin(tokio::time::sleep(header_timeout)),
        }
    }

    fn enter(&mut self, phase: Phase) {
        let timeout = match phase {
            Phase::Headers => self.header_timeout,
            Phase::Idle => self.idle_timeout,
            Phase::Busy => Duration::ZERO,
        };
        self.phase = phase;
        if phase != Phase::Busy {
            self.deadline.as_mut().reset(Instant::now() + timeout);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for TimedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.in_flight.busy() {
            this.phase = Phase::Busy;
            this.in_flight.idle_waker.register(cx.waker());
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.phase == Phase::Busy {
            this.enter(Phase::Idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle {
                    this.enter(Phase::Headers);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection timed out",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TimedIo<I> {
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

/// A response body that keeps its connection busy until it is finished or dropped.
pub struct GuardedBody<B> {
    inner: B,
    _guard: InFlightGuard,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, guard: InFlightGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for GuardedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body yields when it moved no byte for `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent no byte within the body timeout")]
pub struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] when no frame arrives for `timeout`.
///
/// The clock runs only while the body is polled and has nothing to give, so a body that is
/// already buffered costs no timer.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::http::BoxError>,
{
    type Data = Bytes;
    type Error = crate::http::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(deadline) = this.deadline.as_mut() {
                    deadline.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error (or anything in its source chain) is [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        current = e.source();
    }
    false
}
