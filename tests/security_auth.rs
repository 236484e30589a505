//! The gateway's token never reaches an upstream (contract section 5): more than one
//! `Authorization` header is 400 `invalid_request` on every request, and a bearer value
//! starting `wxg_` — scheme in any case, spaces or tabs after it, bytes that are not text —
//! is recognised and stripped on every route; other credentials pass unchanged.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{self, RawResponse};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error_body};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn gateway(wx: &FakeWechat, echo: &Echo) -> Gateway {
    GatewayBuilder::new(wx)
        .route("/pub/", &echo.url, "public")
        .route("/opt/", &echo.url, "optional")
        .route("/req/", &echo.url, "required")
        .start()
        .await
}

/// `GET path` with raw header bytes (each line ending in CRLF), sent verbatim.
async fn get_with(addr: SocketAddr, path: &str, headers: &[u8]) -> RawResponse {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n").into_bytes();
    head.extend_from_slice(headers);
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&head).await.expect("write request");
    raw::read_response(&mut s, Duration::from_secs(5))
        .await
        .expect("no complete response")
}

fn authorization(value: &[u8]) -> Vec<u8> {
    [b"Authorization: ".as_slice(), value, b"\r\n"].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_one_authorization_header_is_refused_everywhere() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c", "o-dup", None);
    let gw = gateway(&wx, &echo).await;
    let token = gw.token("c").await;
    let bearer = format!("Bearer {token}");
    let basic = "Basic dXNlcjpwYXNz";
    let pairs = [(basic, bearer.as_str()), (&bearer, &bearer), (basic, basic)];
    for path in ["/pub/x", "/opt/x", "/req/x", "/wx/session", "/nothing"] {
        for (first, second) in pairs {
            let headers = [
                authorization(first.as_bytes()),
                authorization(second.as_bytes()),
            ]
            .concat();
            let r = get_with(gw.addr, path, &headers).await;
            assert_eq!(r.status, 400, "{path}: {} {}", r.status, r.text());
            assert_error_body(&r.json(), "invalid_request");
        }
    }
    assert_eq!(echo.count(), 0, "forwarded: {:?}", echo.records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_tokens_in_any_shape_are_never_forwarded() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c", "o-shape", None);
    let gw = gateway(&wx, &echo).await;
    let token = gw.token("c").await;
    let valid_shapes = [
        format!("Bearer\t{token}"),
        format!("bearer  {token}"),
        format!("BEARER \t {token}"),
    ];
    for value in &valid_shapes {
        for path in ["/pub/x", "/opt/x", "/req/x"] {
            let r = get_with(gw.addr, path, &authorization(value.as_bytes())).await;
            assert_eq!(r.status, 200, "{path} {value:?}: {}", r.text());
            let rec = echo.last();
            assert!(!rec.dump().contains("wxg_"), "{value:?} forwarded: {rec:?}");
            if path != "/pub/x" {
                assert_eq!(rec.header("x-wx-openid"), Some("o-shape"), "{value:?}");
            }
        }
    }
    let mut not_text = b"Bearer ".to_vec();
    not_text.extend_from_slice(token.as_bytes());
    not_text.extend_from_slice(b"\xff");
    let unknown = b"Bearer\twxg_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".to_vec();
    for value in [&not_text, &unknown] {
        let r = get_with(gw.addr, "/pub/x", &authorization(value)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!echo.last().dump().contains("wxg_"), "{:?}", echo.last());
        for path in ["/opt/x", "/req/x"] {
            let before = echo.count();
            let r = get_with(gw.addr, path, &authorization(value)).await;
            assert_eq!(
                r.status,
                401,
                "{path}: an unknown gateway token: {}",
                r.text()
            );
            assert_error_body(&r.json(), "unauthenticated");
            assert_eq!(echo.count(), before, "{path}: a 401 was forwarded");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_credentials_pass_unchanged() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo).await;
    for value in ["Basic dXNlcjpwYXNz", "Bearer legacy.jwt.value", "Token abc"] {
        for path in ["/pub/x", "/opt/x"] {
            let r = get_with(gw.addr, path, &authorization(value.as_bytes())).await;
            assert_eq!(r.status, 200, "{path} {value:?}: {}", r.text());
            assert_eq!(echo.last().header_all("authorization"), vec![value]);
        }
    }
}

/// A live token sent in a shape the gateway does not take as its credential (another
/// scheme, no blank after `Bearer`, no scheme at all) is still never forwarded: the
/// client is anonymous on public and optional routes, and the upstream never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_token_in_any_other_shape_is_not_forwarded() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c", "o-shape", None);
    let gw = gateway(&wx, &echo).await;
    let token = gw.token("c").await;
    let shapes = [
        format!("Token {token}"),
        format!("Bearer{token}"),
        token.clone(),
        format!("bearer:{token}"),
    ];
    for value in &shapes {
        for path in ["/pub/x", "/opt/x"] {
            let r = get_with(gw.addr, path, &authorization(value.as_bytes())).await;
            assert_eq!(r.status, 200, "{path} {value:?}: {}", r.text());
            let seen = echo.last();
            assert!(
                seen.header_all("authorization").is_empty(),
                "{path}: {value:?} was forwarded"
            );
            assert!(seen.header("x-wx-openid").is_none(), "{path}: {value:?}");
        }
    }
}
