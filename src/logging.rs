//! Log set-up: text or JSON lines on stderr, written in batches off the request path.
//!
//! `RUST_LOG` overrides `[log] level`. The HTTP and TLS libraries are capped at `info`
//! whatever the filter says, so that no trace of theirs can carry a URL with an app secret
//! or an access_token; the gateway's own log lines never include secrets (they travel in
//! [`crate::secret::Secret`], which prints `***`). Lines are appended to a buffer that a
//! background thread flushes every [`FLUSH_EVERY`] (or at once past [`MAX_BUFFER`]), like
//! nginx's `access_log ... buffer= flush=`: one write per batch, not one per request.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Libraries whose verbose levels could echo request targets.
const CAPPED: [&str; 5] = [
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "tokio_rustls=info",
];
/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this large is written at once by the thread that filled it.
const MAX_BUFFER: usize = 64 * 1024;

/// Buffered stderr shared by every thread that logs.
#[derive(Clone, Default)]
pub struct BatchedStderr {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl BatchedStderr {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Write out whatever is buffered.
    pub fn flush_now(&self) {
        let pending = std::mem::take(&mut *self.lock());
        if !pending.is_empty() {
            let _ = std::io::stderr().lock().write_all(&pending);
        }
    }
}

/// One log line being written.
pub struct LineWriter<'a>(&'a BatchedStderr);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock();
        buffer.extend_from_slice(buf);
        if buffer.len() >= MAX_BUFFER {
            let full = std::mem::take(&mut *buffer);
            drop(buffer);
            std::io::stderr().lock().write_all(&full)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

/// Flushes the log buffer when dropped (keep it alive until exit).
pub struct LogGuard(BatchedStderr);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush_now();
    }
}

/// Install the global subscriber and start the flusher thread.
pub fn init(format: LogFormat, level: &str) -> LogGuard {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    for directive in CAPPED {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let writer = BatchedStderr::default();
    let flusher = writer.clone();
    let _ = std::thread::Builder::new()
        .name("wxgate-log".into())
        .spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush_now();
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    let result = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("wxgate: logging already initialised: {e}");
    }
    LogGuard(writer)
}
