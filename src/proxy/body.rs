//! A streamed request body that fails once it passes `max_body_bytes`.
//!
//! Bytes flow to the upstream as they arrive; nothing is buffered whole. When the count
//! passes the limit the body yields [`BodyTooLarge`], which the proxy recognises in the
//! client's error chain and answers with 413.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::http::{BoxError, RequestBody};

/// The body of a request on its way upstream: the client's, cut off at the limit.
pub type UpstreamBody = LimitedBody<RequestBody>;

/// The error a body yields when it passes the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than the configured limit")]
pub struct BodyTooLarge;

/// A body that counts bytes and stops at a limit.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                match self.remaining.checked_sub(len) {
                    Some(left) => {
                        self.remaining = left;
                        Some(Ok(frame))
                    }
                    None => Some(Err(Box::new(BodyTooLarge))),
                }
            }
            Some(Err(e)) => Some(Err(e.into())),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether an error (or anything in its source chain) is [`BodyTooLarge`].
pub fn is_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    crate::http::find_in_chain::<BodyTooLarge>(error).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn passes_small_bodies_and_stops_large_ones() {
        let ok = LimitedBody::new(Full::new(Bytes::from_static(b"12345")), 5)
            .collect()
            .await;
        assert_eq!(
            ok.map(|c| c.to_bytes()).ok(),
            Some(Bytes::from_static(b"12345"))
        );
        let err = LimitedBody::new(Full::new(Bytes::from_static(b"123456")), 5)
            .collect()
            .await;
        assert!(err.as_ref().is_err_and(|e| is_too_large(e.as_ref())));
    }
}
