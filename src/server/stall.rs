//! Notices HTTP/2 responses that wait on a client which stopped reading.
//!
//! Over HTTP/2 a client that stops reading stops granting flow-control window: the
//! gateway then has nothing it may write, the socket never blocks, and the write clock of
//! [`super::timeouts::TimedIo`] never starts. So each HTTP/2 response body is watched here:
//! it notes when it has handed out a frame and not been asked for the next (it waits on its
//! client), and while any body is watched the connection's `TimedIo` looks every quarter
//! of `body_timeout` and ends the connection once one has waited longer than that. HTTP/1
//! needs none of this: its response bytes go straight to the socket.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The response bodies of one connection that are watched, and how long each has waited.
pub struct StallWatch {
    epoch: Instant,
    watched: AtomicUsize,
    bodies: Mutex<Vec<StallClock>>,
}

impl Default for StallWatch {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            watched: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
        }
    }
}

/// One watched body: when it began waiting on its client (ms since the epoch + 1), or 0.
#[derive(Clone, Default)]
pub struct StallClock(Arc<AtomicU64>);

impl StallWatch {
    /// Start watching a body.
    pub fn watch(&self) -> StallClock {
        let clock = StallClock::default();
        self.lock().push(clock.clone());
        self.watched.fetch_add(1, Ordering::AcqRel);
        clock
    }

    /// Stop watching a body (it finished or was dropped).
    pub fn unwatch(&self, clock: &StallClock) {
        let mut bodies = self.lock();
        if let Some(i) = bodies.iter().position(|c| Arc::ptr_eq(&c.0, &clock.0)) {
            bodies.swap_remove(i);
            self.watched.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether any body is watched (so the connection should look now and then).
    pub fn is_watching(&self) -> bool {
        self.watched.load(Ordering::Acquire) > 0
    }

    /// The body handed out a frame and waits to be asked for the next.
    pub fn waiting(&self, clock: &StallClock) {
        clock.0.store(self.elapsed_ms() + 1, Ordering::Release);
    }

    /// The body was asked for its next frame.
    pub fn resumed(clock: &StallClock) {
        clock.0.store(0, Ordering::Release);
    }

    /// Whether a watched body has waited on its client for `timeout` or longer.
    pub fn any_stalled(&self, timeout: Duration) -> bool {
        let limit = crate::clock::millis(timeout);
        self.any_stalled_at(self.elapsed_ms(), limit)
    }

    fn any_stalled_at(&self, now_ms: u64, limit_ms: u64) -> bool {
        self.lock().iter().any(|c| {
            let since = c.0.load(Ordering::Acquire);
            since != 0 && now_ms.saturating_sub(since - 1) >= limit_ms
        })
    }

    /// How often a connection with watched bodies looks at them.
    pub fn tick(timeout: Duration) -> Duration {
        (timeout / 4).max(Duration::from_millis(10))
    }

    fn elapsed_ms(&self) -> u64 {
        crate::clock::millis(self.epoch.elapsed()).min(u64::MAX - 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StallClock>> {
        self.bodies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_that_waits_too_long_is_stalled() {
        let watch = StallWatch::default();
        let (a, b) = (watch.watch(), watch.watch());
        assert!(watch.is_watching());
        watch.waiting(&a);
        assert!(!watch.any_stalled(Duration::from_secs(60)));
        // a waited from 0 ms and resumed; b waits from 600 ms
        a.0.store(1, Ordering::Release);
        StallWatch::resumed(&a);
        b.0.store(601, Ordering::Release);
        assert!(!watch.any_stalled_at(1200, 1000), "no body waited 1 s yet");
        assert!(watch.any_stalled_at(1700, 1000), "b waited 1.1 s");
        watch.unwatch(&b);
        assert!(!watch.any_stalled_at(1700, 1000));
        watch.unwatch(&a);
        assert!(!watch.is_watching());
    }
}
