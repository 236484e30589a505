//! Log set-up: text or JSON lines on stderr, written off the request path.
//!
//! `RUST_LOG` overrides `[log] level`. The HTTP and TLS libraries are capped at `info`
//! whatever the filter says, so that no trace of theirs can carry a URL with an app secret
//! or an access_token; the gateway's own log lines never include secrets (they travel in
//! [`crate::secret::Secret`], which prints `***`).

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Libraries whose verbose levels could echo request targets.
const CAPPED: [&str; 5] = [
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "tokio_rustls=info",
];

/// Install the global subscriber; keep the guard alive until exit so buffered lines flush.
pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    for directive in CAPPED {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
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
    guard
}
