//! HTTP/2 request bodies that outlive the handler that let go of them.
//!
//! A handler that answers before reading the whole body (413, 401, 404, an upstream that
//! answered early) drops it. Over HTTP/2 the stream would then be reset under a client
//! still uploading, and clients such as curl report that as a failed transfer and discard
//! the answer, where HTTP/1.1 shows it. So [`LingeringBody`], dropped unfinished, reads
//! the rest and throws it away (releasing its flow-control window as it goes) until the
//! client ends its stream, holding the connection busy meanwhile, and gives up within
//! [`LINGER_MAX_BYTES`], [`LINGER_MAX_TIME`] and [`LINGER_STALL`], as nginx's lingering
//! close does. It never buffers or hands on a byte of what it discards.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// At most this many bytes are read and discarded after the handler let go: enough for a
/// client to finish an upload somewhat over `max_body_bytes` (the usual case of a 413),
/// little enough that a client streaming on and on is reset instead (RST_STREAM NO_ERROR
/// once the answer is out: RFC 9113 §8.1) within seconds on a fast link.
pub const LINGER_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The whole discarding of one body ends after this long (nginx's `lingering_time`).
pub const LINGER_MAX_TIME: Duration = Duration::from_secs(30);

/// A client that sends nothing for this long while its body is discarded is reset
/// (nginx's `lingering_timeout`).
pub const LINGER_STALL: Duration = Duration::from_secs(5);

/// Whatever keeps the connection counted busy while a body lingers (the connection's
/// in-flight guard), so that its header and idle clocks do not cut off an upload.
pub type Hold = Box<dyn Send + Sync + 'static>;

/// A request body that, dropped before its end with a [`Hold`], is drained in the
/// background (see the module doc); without one it is plain hyper's.
pub struct LingeringBody {
    inner: Option<Incoming>,
    hold: Option<Hold>,
}

impl LingeringBody {
    /// `hold`: linger when dropped unfinished (HTTP/2), keeping this alive meanwhile.
    pub fn new(inner: Incoming, hold: Option<Hold>) -> Self {
        Self {
            inner: Some(inner),
            hold,
        }
    }
}

impl Drop for LingeringBody {
    fn drop(&mut self) {
        let (Some(body), Some(hold)) = (self.inner.take(), self.hold.take()) else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // Dropped off a runtime (never on the server's paths), the stream is simply reset.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(discard(body, hold));
        }
    }
}

/// Read and drop `body` until it ends, fails, stalls or passes the bounds; then drop
/// `hold` (and with the body, the stream's last reference: h2 resets it only if the
/// client has not ended it).
async fn discard(mut body: Incoming, hold: Hold) {
    let mut left = LINGER_MAX_BYTES;
    let drained = async {
        loop {
            let frame = match tokio::time::timeout(LINGER_STALL, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(_)) | None) | Err(_) => return,
            };
            let len = frame.data_ref().map_or(0, |d| d.len() as u64);
            match left.checked_sub(len) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_MAX_TIME, drained).await;
    drop(hold);
}

impl Body for LingeringBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}
