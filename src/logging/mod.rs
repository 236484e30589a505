//! Log set-up: text or JSON lines on stderr, written in batches off the request path.
//!
//! `RUST_LOG` overrides `[log] level`. The HTTP and TLS libraries are capped at `info`
//! whatever the filter says, so that no trace of theirs can carry a URL with an app secret
//! or an access_token; the gateway's own log lines never include secrets (they travel in
//! [`crate::secret::Secret`], which prints `***`). Each thread appends its lines to a
//! buffer of its own (no lock another core contends for on the request path), and a
//! background thread writes every buffer out every [`FLUSH_EVERY`] (a thread writes its
//! own at once past [`MAX_BUFFER`]), like nginx's `access_log ... buffer= flush=`: one
//! write per batch, not one per request. A line is always written whole.

mod access;
pub mod audit;

use std::cell::OnceCell;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

pub use access::AccessLine;

/// Where the access log goes, once logging is set up: the buffers and the format.
static ACCESS: OnceLock<(BatchedStderr, LogFormat)> = OnceLock::new();

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

/// One thread's pending log lines.
type Buffer = Arc<Mutex<Vec<u8>>>;

fn lock(buffer: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    buffer.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// This thread's buffer, registered with the flusher on first use.
    static OWN: OnceCell<Buffer> = const { OnceCell::new() };
}

/// Buffered stderr: every logging thread's buffer, for the flusher to drain.
#[derive(Clone, Default)]
pub struct BatchedStderr {
    buffers: Arc<Mutex<Vec<Buffer>>>,
}

impl BatchedStderr {
    fn register(&self) -> Buffer {
        let buffer = Buffer::default();
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer.clone());
        buffer
    }

    /// Write out whatever every thread has buffered; forget the buffers of threads
    /// that have ended.
    pub fn flush_now(&self) {
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = std::io::stderr().lock();
        for buffer in buffers.iter() {
            let pending = std::mem::take(&mut *lock(buffer));
            if !pending.is_empty() {
                let _ = out.write_all(&pending);
            }
        }
        buffers.retain(|b| Arc::strong_count(b) > 1);
    }
}

/// Append `line` to this thread's buffer, whole.
fn append(batched: &BatchedStderr, line: &[u8]) {
    OWN.with(|own| {
        let buffer = own.get_or_init(|| batched.register());
        let mut pending = lock(buffer);
        pending.extend_from_slice(line);
        if pending.len() >= MAX_BUFFER {
            let full = std::mem::take(&mut *pending);
            drop(pending);
            let _ = std::io::stderr().lock().write_all(&full);
        }
    });
}

/// Write one access-log line, if logging is set up and `wxgate::access` is enabled at
/// `info` (see [`access`]).
pub fn access(line: &AccessLine<'_>) {
    let Some((batched, format)) = ACCESS.get() else {
        return;
    };
    if !tracing::enabled!(target: "wxgate::access", tracing::Level::INFO) {
        return;
    }
    let mut text = String::with_capacity(256);
    line.format(*format, SystemTime::now(), &mut text);
    append(batched, text.as_bytes());
}

/// One log line being written, into the writing thread's buffer.
pub struct LineWriter<'a>(&'a BatchedStderr);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        append(self.0, buf);
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
    match result {
        Ok(()) => {
            let _ = ACCESS.set((writer.clone(), format));
        }
        Err(e) => eprintln!("wxgate: logging already initialised: {e}"),
    }
    LogGuard(writer)
}
