//! The request body as handlers see it: cut off when it stalls, its errors told apart.
//!
//! [`TimedBody`] fails with [`BodyError::TimedOut`] when the client sends no byte of its
//! body for `[server] body_timeout`, and marks every error of hyper's body (a bad chunk
//! size, a client gone) as [`BodyError::Broken`], so that handlers and the proxy can find
//! either in an error chain and answer 408 `request_timeout` or 400 `invalid_request`
//! (`GatewayError`'s `From<&BodyError>` says which).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::http::BoxError;

/// Why a request body ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// It moved no byte for `body_timeout`.
    #[error("the request body sent no byte within the body timeout")]
    TimedOut,
    /// The client's framing was broken (a bad chunk size) or the client went away.
    #[error("the request body is malformed or was cut off")]
    Broken(#[source] BoxError),
}

impl BodyError {
    /// The body error in `error`'s source chain, if there is one.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
        crate::http::find_in_chain(error)
    }
}

/// A request body that fails with [`BodyError::TimedOut`] when no frame arrives for
/// `timeout`, and marks the client's own errors as [`BodyError::Broken`].
///
/// The clock runs only while the body is polled and has nothing to give, so a body that is
/// already buffered costs no timer.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed at the first wait; re-armed lazily, when it fires after progress.
    deadline: Option<Pin<Box<Sleep>>>,
    /// When the body last gave a frame (meaningful once `deadline` is armed).
    progressed: Instant,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            progressed: Instant::now(),
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if this.deadline.is_some() {
                    this.progressed = Instant::now();
                }
                let broken = |e: B::Error| -> BoxError { Box::new(BodyError::Broken(e.into())) };
                Poll::Ready(frame.map(|f| f.map_err(broken)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this.deadline.get_or_insert_with(|| {
                    this.progressed = Instant::now();
                    Box::pin(tokio::time::sleep(timeout))
                });
                while deadline.as_mut().poll(cx).is_ready() {
                    let due = this.progressed + timeout;
                    if Instant::now() >= due {
                        return Poll::Ready(Some(Err(Box::new(BodyError::TimedOut))));
                    }
                    deadline.as_mut().reset(due);
                }
                Poll::Pending
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
