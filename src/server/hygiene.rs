//! Refuses request smuggling shapes before a request reaches the router.
//!
//! As nginx >= 1.21.1 does, a request with both `Content-Length` and `Transfer-Encoding`,
//! with more than one `Content-Length` (even equal ones), or with a `Transfer-Encoding`
//! that is not exactly `chunked` gets 400 `invalid_request` and its connection is closed,
//! so no part of it reaches an upstream or the gateway's endpoints. So does a header whose
//! name reads as one of those two once `_` or `.` is read as `-` (`Transfer_Encoding`),
//! which CGI-style upstreams merge into the real one. hyper answers some shapes itself
//! (a bare 400: `Content-Length: 5, 5`, a last coding that is not `chunked`) and hides
//! others from the service; [`super::framing`] marks those on the way in. A few header
//! lookups, no allocation.

use http::{HeaderMap, header};

use crate::error::GatewayError;

/// Check one request's framing headers; `flagged` is what the framing scan found.
pub fn check(headers: &HeaderMap, flagged: bool) -> Result<(), GatewayError> {
    let refuse = |why: &'static str| Err(GatewayError::BadFraming(why));
    if flagged {
        return refuse(
            "the request has both Content-Length and Transfer-Encoding, or two Content-Length headers",
        );
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let has_length = lengths.next().is_some();
    if lengths.next().is_some() {
        return refuse("the request has more than one Content-Length header");
    }
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_some() {
        if has_length {
            return refuse("the request has both Content-Length and Transfer-Encoding");
        }
        if !is_exactly_chunked(codings) {
            return refuse("the only Transfer-Encoding accepted is chunked");
        }
    }
    if headers.keys().any(|name| is_look_alike(name.as_str())) {
        return refuse("a header name imitates Content-Length or Transfer-Encoding");
    }
    Ok(())
}

/// Whether the `Transfer-Encoding` lines list exactly one coding, `chunked`.
fn is_exactly_chunked<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> bool {
    let mut codings = values
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    codings
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// `content_length`, `Transfer.Encoding` and the like (names arrive lower-cased).
fn is_look_alike(name: &str) -> bool {
    let imitates = |real: &str| {
        name.len() == real.len()
            && name != real
            && name
                .bytes()
                .zip(real.bytes())
                .all(|(n, r)| n == r || (r == b'-' && !n.is_ascii_alphanumeric()))
    };
    imitates("content-length") || imitates("transfer-encoding")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in lines {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn refuses_the_shapes_hyper_passes_on() {
        for bad in [
            &[("transfer-encoding", "gzip, chunked")][..],
            &[("transfer-encoding", "chunked, chunked")],
            &[
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "chunked"), ("content-length", "5")],
            &[("content-length", "5"), ("content-length", "5")],
            &[("transfer_encoding", "chunked")],
            &[("content.length", "5")],
        ] {
            let r = check(&headers(bad), false);
            assert!(matches!(r, Err(GatewayError::BadFraming(_))), "{bad:?}");
        }
        assert!(check(&HeaderMap::new(), true).is_err());
    }

    #[test]
    fn passes_ordinary_framing() {
        for good in [
            &[("content-length", "5")][..],
            &[("transfer-encoding", "chunked")],
            &[("transfer-encoding", "Chunked")],
            &[("transfer-encoding", ", chunked")],
            &[("x-content-length", "5"), ("content-lengths", "1")],
            &[],
        ] {
            assert!(check(&headers(good), false).is_ok(), "{good:?}");
        }
    }
}
