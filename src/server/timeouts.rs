//! Per-connection timeouts, enforced on the socket itself.
//!
//! hyper's own header timeout does not run while hyper-util's auto builder sniffs the
//! protocol, and it has no idle timeout, so the accepted stream is wrapped in [`TimedIo`].
//! A connection is *busy* while a request is in flight (counted by [`InFlight`], which the
//! service holds until the response body is done). When not busy it is *idle* (closed after
//! `idle_timeout`) until bytes of a new request arrive, which start the header clock
//! (closed after `header_read_timeout`). A new connection starts on the header clock.
//! Whatever the phase, a write to the client that makes no progress for `body_timeout`
//! ends the connection, so a client that stops reading frees its slot and its upstream
//! (over HTTP/2, where flow control stalls instead, [`super::stall`] notices).
//!
//! The read clock is lazy: a phase change only notes when the phase began, and the one
//! timer of the connection, armed at most the shorter of the two read timeouts ahead, checks the phase's
//! deadline when it fires and re-arms itself if that deadline is still ahead. A keep-alive
//! request therefore costs no timer operation; an idle connection wakes once per
//! that shorter timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::stall::{StallClock, StallWatch};

/// Requests in flight on one connection, the connection task to wake when the last one
/// finishes (so that its idle clock starts even if hyper is not reading just then), and
/// the HTTP/2 response bodies watched for a client that stopped reading.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle_waker: AtomicWaker,
    /// HTTP/2 response bodies that may wait on a client which stopped reading.
    stalls: StallWatch,
    /// Set once the connection switched protocols: no more requests follow, and the
    /// tunnel that now owns the stream keeps its own idle clock.
    upgraded: AtomicBool,
}

impl InFlight {
    /// Count a request until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    /// The connection switched protocols (a 101 was sent): from now on it is busy for
    /// good, so the header and idle clocks never cut the tunnel (a stalled write still
    /// does).
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Ordering::Release);
    }

    fn busy(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0 || self.upgraded.load(Ordering::Acquire)
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

/// The clocks of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnTimeouts {
    /// From the first byte of a request (or the connection's start) to its whole head.
    pub header_read: Duration,
    /// Between keep-alive requests.
    pub idle: Duration,
    /// A write to the client that makes no progress for this long ends the connection.
    pub write_stall: Duration,
}

impl ConnTimeouts {
    /// How far ahead the read clock is ever armed: the shorter read timeout.
    fn horizon(&self) -> Duration {
        self.header_read.min(self.idle)
    }
}

/// An IO stream that times out slow headers, idle keep-alive connections and clients that
/// stop reading.
pub struct TimedIo<I> {
    inner: I,
    in_flight: Arc<InFlight>,
    timeouts: ConnTimeouts,
    phase: Phase,
    /// When the current phase began.
    since: Instant,
    /// Fires no later than the current phase's deadline (see the module doc).
    check: Pin<Box<Sleep>>,
    /// Armed while a write waits for the client; created at the first such wait.
    write_deadline: Option<Pin<Box<Sleep>>>,
    write_waiting: bool,
    /// Runs while HTTP/2 response bodies are watched for a client that stopped reading.
    stall_tick: Option<Pin<Box<Sleep>>>,
}

impl<I> TimedIo<I> {
    pub fn new(inner: I, in_flight: Arc<InFlight>, timeouts: ConnTimeouts) -> Self {
        Self {
            inner,
            in_flight,
            timeouts,
            phase: Phase::Headers,
            since: Instant::now(),
            check: Box::pin(tokio::time::sleep(timeouts.horizon())),
            write_deadline: None,
            write_waiting: false,
            stall_tick: None,
        }
    }

    /// While response bodies are watched, look at them every tick; true when one has
    /// waited on its client for the whole write-stall timeout.
    fn poll_stalls(&mut self, cx: &mut Context<'_>) -> bool {
        let stalls = &self.in_flight.stalls;
        if !stalls.is_watching() {
            return false;
        }
        let tick = StallWatch::tick(self.timeouts.write_stall);
        let timer = self
            .stall_tick
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(tick)));
        while timer.as_mut().poll(cx).is_ready() {
            if stalls.any_stalled(self.timeouts.write_stall) {
                return true;
            }
            timer.as_mut().reset(Instant::now() + tick);
        }
        false
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.since = Instant::now();
    }

    /// When the current phase times out (never while a request is in flight).
    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Headers => Some(self.since + self.timeouts.header_read),
            Phase::Idle => Some(self.since + self.timeouts.idle),
            Phase::Busy => None,
        }
    }

    /// Whether the phase's deadline has passed; if the timer fired early (the phase
    /// changed since it was armed), it is armed again, at most the shorter read timeout
    /// ahead.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.check.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let horizon = now + self.timeouts.horizon();
            let next = match self.deadline() {
                Some(due) if due <= now => return true,
                Some(due) => due.min(horizon),
                None => horizon,
            };
            self.check.as_mut().reset(next);
        }
        false
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
            if this.poll_stalls(cx) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client read nothing of a response for the body timeout",
                )));
            }
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
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ))),
            Poll::Pending => Poll::Pending,
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> TimedIo<I> {
    /// Run a write-side operation; while it waits for the client, the write clock runs
    /// (armed at the first wait, disarmed by any progress), and when it runs out the
    /// operation fails with `TimedOut`.
    fn poll_timed_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let ready = op(Pin::new(&mut self.inner), cx);
        if ready.is_ready() {
            self.write_waiting = false;
            return ready;
        }
        let stall = self.timeouts.write_stall;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if !self.write_waiting {
            self.write_waiting = true;
            deadline.as_mut().reset(Instant::now() + stall);
        }
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the body timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TimedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_timed_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_timed_write(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_timed_write(cx, |io, cx| io.poll_shutdown(cx))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_timed_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }
}

/// A response body that keeps its connection busy until it is finished or dropped, and
/// (for HTTP/2) tells the connection's [`StallWatch`] while it waits on its client.
pub struct GuardedBody<B> {
    inner: B,
    guard: InFlightGuard,
    clock: Option<StallClock>,
}

impl<B> GuardedBody<B> {
    /// `watch`: the body's waits on its client are watched (HTTP/2, see [`super::stall`]).
    pub fn new(inner: B, guard: InFlightGuard, watch: bool) -> Self {
        let clock = watch.then(|| guard.0.stalls.watch());
        Self {
            inner,
            guard,
            clock,
        }
    }
}

impl<B> Drop for GuardedBody<B> {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.take() {
            self.guard.0.stalls.unwatch(&clock);
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
        let this = &mut *self;
        if let Some(clock) = &this.clock {
            StallWatch::resumed(clock);
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Some(clock), Poll::Ready(Some(Ok(_)))) = (&this.clock, &polled)
            && !this.inner.is_end_stream()
        {
            this.guard.0.stalls.waiting(clock);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
