//! Body types and small response builders shared by every handler.
//!
//! The gateway answers with one boxed body type so that proxied (streamed) responses and
//! its own JSON answers travel through the same server code. Nothing here decides what a
//! response says; it only builds one.

pub mod linger;
pub mod names;
pub mod request_body;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use serde::Serialize;

/// Any error a body may yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the gateway sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// The first error of type `T` in `error`'s source chain (`error` itself included).
pub fn find_in_chain<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| e.downcast_ref::<T>())
}

/// The request's `Content-Length` as a number; `None` when it is absent or not one plain
/// decimal number (more than one value is refused earlier, by the server's framing check).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body of every request the gateway receives: hyper's, cut off when it stalls for
/// `[server] body_timeout`, and over HTTP/2 drained when a handler answers without it.
pub type RequestBody = request_body::TimedBody<linger::LingeringBody>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        Err(_) => {
            br#"{"error":{"code":"internal_error","message":"response encoding failed"}}"#.to_vec()
        }
    };
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

/// A whole body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text response (Prometheus metrics, health probes).
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The pooled HTTP client used for WeChat and for `https://` upstreams: keep-alive,
/// `http://` and `https://` (rustls with the ring provider and the webpki roots).
pub type Client<B = Body> = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    B,
>;

/// Build a pooled client. `http2` lets ALPN pick HTTP/2 for `https://` peers that offer it.
pub fn client<B>(http2: bool) -> Client<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1();
    let connector = if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    };
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_length_reads_one_decimal_value() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static(v));
            declared_length(&h)
        };
        assert_eq!(declared_length(&HeaderMap::new()), None);
        assert_eq!(with("0"), Some(0));
        assert_eq!(with("1048577"), Some(1_048_577));
        assert_eq!(with("18446744073709551615"), Some(u64::MAX));
        for junk in [
            "",
            "-1",
            "5, 5",
            "0x10",
            "1e3",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(with(junk), None, "{junk:?}");
        }
    }
}
