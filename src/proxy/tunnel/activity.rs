//! When a tunnel last moved a byte: [`Watched`] streams note every read and write that
//! moved data on a shared [`Activity`], whose [`Activity::idle_for`] resolves once
//! nothing has moved either way for the given time. One timer per tunnel, re-armed only
//! when it fires, so copying costs an atomic store per read or write.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The last time a byte moved, shared by both directions of one tunnel.
#[derive(Clone)]
pub struct Activity(Arc<Clock>);

struct Clock {
    base: Instant,
    /// Milliseconds after `base` of the last byte moved either way.
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self(Arc::new(Clock {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }))
    }

    fn touch(&self) {
        let ms = u64::try_from(self.0.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.0.base + Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once no byte has moved for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let due = self.last() + idle;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    }
}

/// A stream whose reads and writes that move data touch an [`Activity`].
pub struct Watched<I> {
    inner: I,
    activity: Activity,
}

impl<I> Watched<I> {
    pub fn new(inner: I, activity: &Activity) -> Self {
        Self {
            inner,
            activity: activity.clone(),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_is_measured_from_the_last_byte_either_way() {
        let activity = Activity::new();
        let (a, mut b) = tokio::io::duplex(64);
        let mut watched = Watched::new(a, &activity);
        let idle = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(6)).await;
        watched.write_all(b"x").await.expect("write");
        tokio::time::advance(Duration::from_secs(6)).await;
        // 12 s since the start, 6 s since the write: not idle yet.
        let early = tokio::time::timeout(Duration::from_secs(3), activity.idle_for(idle)).await;
        assert!(early.is_err(), "idle fired 9 s after a write");
        b.write_all(b"y").await.expect("write back");
        let mut one = [0u8; 1];
        watched.read_exact(&mut one).await.expect("read");
        let started = Instant::now();
        activity.idle_for(idle).await;
        let waited = started.elapsed();
        assert!(
            waited >= idle && waited < idle + Duration::from_secs(1),
            "{waited:?}"
        );
    }
}
