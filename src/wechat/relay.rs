//! The open-API relay's WeChat side: one caller request sent on to `{api_base}/{path}`.
//!
//! The request carries the caller's method, body and `Content-Type`, the caller's query
//! (already stripped of `appid` and `access_token`) and the app's token, and nothing else.
//! The answer comes back as WeChat sent it. A JSON answer (a body starting with `{`) is
//! small, so it is read whole and its errcode looked at, which lets the caller replay a call
//! WeChat refused for its token; any other answer (a QR code) streams on byte for byte.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::WechatClient;
use crate::error::GatewayError;
use crate::http::request_body::TimedBody;
use crate::http::{Body, BoxError, full};
use crate::secret::Secret;

/// JSON answers longer than this are streamed on without a look at their errcode (WeChat's
/// errcode answers are a few dozen bytes).
const MAX_JSON_LOOK: usize = 256 * 1024;

/// One caller request, kept whole so that it can be sent twice.
pub struct RelayCall<'a> {
    pub method: Method,
    /// An allow-listed path relative to `api_base`.
    pub path: &'a str,
    /// The caller's query without `appid` and `access_token`, as the caller encoded it.
    pub query: &'a str,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// WeChat's answer to one relayed call.
pub struct RelayAnswer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: AnswerBody,
}

enum AnswerBody {
    /// A JSON answer, read whole, with its errcode (0 when absent or unreadable).
    Json(Bytes, i64),
    /// Anything else: what was read so far, then the rest as it comes.
    Streamed(Bytes, Incoming),
}

impl RelayAnswer {
    /// The errcode of a JSON answer; 0 for success, unreadable JSON and images.
    pub fn errcode(&self) -> i64 {
        match self.body {
            AnswerBody::Json(_, code) => code,
            AnswerBody::Streamed(..) => 0,
        }
    }

    /// The caller's response: WeChat's status, `Content-Type` and body, nothing else.
    /// `stall` bounds how long a streamed body may send nothing.
    pub fn into_response(self, stall: std::time::Duration) -> Response<Body> {
        let body = match self.body {
            AnswerBody::Json(bytes, _) => full(bytes),
            AnswerBody::Streamed(first, rest) => {
                let prefixed = Prefixed {
                    first: (!first.is_empty()).then_some(first),
                    rest,
                };
                TimedBody::new(prefixed, stall).boxed()
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        if let Some(content_type) = self.content_type {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type);
        }
        response
    }
}

impl WechatClient {
    /// Send `call` with `access_token`. The head and, for JSON, the whole body must come
    /// within `[wechat] timeout`; a WeChat that cannot be reached is 503.
    pub async fn relay(
        &self,
        call: &RelayCall<'_>,
        access_token: &Secret,
    ) -> Result<RelayAnswer, GatewayError> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.config.timeout, self.send_relay(call, access_token))
            .await
            .unwrap_or(Err(GatewayError::WechatUnavailable { errcode: None }));
        let outcome = result.as_ref().err().map(GatewayError::code);
        self.metrics
            .record_wechat("relay", started.elapsed(), outcome);
        if result.is_err() {
            tracing::warn!(path = call.path, "relayed WeChat call failed");
        }
        result
    }

    async fn send_relay(
        &self,
        call: &RelayCall<'_>,
        access_token: &Secret,
    ) -> Result<RelayAnswer, GatewayError> {
        let token = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.expose())
            .finish();
        let separator = if call.query.is_empty() { "" } else { "&" };
        let uri = format!(
            "{}/{}?{}{separator}{token}",
            self.config.api_base, call.path, call.query
        );
        let mut builder = Request::builder().method(call.method.clone()).uri(uri);
        if let Some(content_type) = &call.content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let request = builder
            .body(full(call.body.clone()))
            .map_err(|_| GatewayError::invalid("the relayed request cannot be built"))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|_| GatewayError::WechatUnavailable { errcode: None })?;
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = read_answer(response.into_body()).await?;
        Ok(RelayAnswer {
            status,
            content_type,
            body,
        })
    }
}

/// Read up to the first byte that tells JSON from anything else; read JSON whole.
async fn read_answer(mut body: Incoming) -> Result<AnswerBody, GatewayError> {
    let mut seen = BytesMut::new();
    let first = loop {
        if let Some(&b) = seen.iter().find(|b| !b.is_ascii_whitespace()) {
            break Some(b);
        }
        if !read_more(&mut body, &mut seen).await? {
            break None;
        }
    };
    let mut ended = first.is_none();
    if first == Some(b'{') {
        while !ended && seen.len() <= MAX_JSON_LOOK {
            ended = !read_more(&mut body, &mut seen).await?;
        }
    }
    if !ended {
        return Ok(AnswerBody::Streamed(seen.freeze(), body));
    }
    let errcode = serde_json::from_slice(&seen)
        .ok()
        .and_then(|v| super::errcode::errcode(&v).ok().flatten())
        .unwrap_or(0);
    Ok(AnswerBody::Json(seen.freeze(), errcode))
}

/// Append the body's next data to `seen`; `false` once the body has ended.
async fn read_more(body: &mut Incoming, seen: &mut BytesMut) -> Result<bool, GatewayError> {
    let frame = body
        .frame()
        .await
        .transpose()
        .map_err(|_| GatewayError::WechatUnavailable { errcode: None })?;
    if let Some(data) = frame.as_ref().and_then(|f| f.data_ref()) {
        seen.extend_from_slice(data);
    }
    Ok(frame.is_some())
}

/// The bytes already read, then the rest of WeChat's body.
struct Prefixed {
    first: Option<Bytes>,
    rest: Incoming,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self.first.as_ref().map_or(0, |b| b.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}
