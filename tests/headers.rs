//! Header handling on the proxy path: hop-by-hop headers (RFC 9110 §7.6.1) dropped in
//! both directions, `X-Forwarded-For/Proto/Host` replaced for an untrusted peer and
//! appended for a trusted one, and `X-Request-Id` kept or minted.

mod common;

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder};

async fn public_gateway(wx: &FakeWechat, echo: &Echo, trusted: bool) -> Gateway {
    let mut b = GatewayBuilder::new(wx).route("/pub/", &echo.url, "public");
    if trusted {
        b = b.server("trusted_proxies", "[\"127.0.0.1/32\"]");
    }
    b.start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_request_headers_are_not_forwarded() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = public_gateway(&wx, &echo, false).await;
    let head = format!(
        "GET /pub/h HTTP/1.1\r\nHost: {}\r\nConnection: close, X-Foo\r\nX-Foo: listed-in-connection\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n\
         X-Keep: end-to-end\r\n\r\n",
        gw.addr
    );
    let r = raw::request(gw.addr, &head).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    for h in ["x-foo", "keep-alive", "te", "upgrade", "proxy-connection"] {
        assert!(
            rec.header(h).is_none(),
            "hop-by-hop `{h}` forwarded: {rec:?}"
        );
    }
    let conn = rec.header_all("connection").join(",").to_ascii_lowercase();
    assert!(!conn.contains("x-foo"), "Connection forwarded as {conn:?}");
    assert_eq!(rec.header("x-keep"), Some("end-to-end"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_response_headers_are_not_returned() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = public_gateway(&wx, &echo, false).await;
    let r = raw::get(gw.addr, "/pub/hop", "").await;
    assert_eq!(r.status, 200);
    for h in ["x-hop-resp", "keep-alive", "proxy-connection"] {
        assert!(
            r.header(h).is_none(),
            "hop-by-hop `{h}` returned: {:?}",
            r.headers
        );
    }
    let conn = r
        .header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        !conn.contains("x-hop-resp"),
        "Connection returned as {conn:?}"
    );
    assert_eq!(r.header("x-end-to-end"), Some("1"));
}

const FORGED_XF: &str =
    "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_replaced_for_an_untrusted_peer() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = public_gateway(&wx, &echo, false).await;
    let head = format!(
        "GET /pub/f HTTP/1.1\r\nHost: app.example.com\r\n{FORGED_XF}Connection: close\r\n\r\n"
    );
    assert_eq!(raw::request(gw.addr, &head).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(rec.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(rec.header_all("x-forwarded-host"), vec!["app.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_appended_for_a_trusted_peer() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = public_gateway(&wx, &echo, true).await;
    let head = format!(
        "GET /pub/f HTTP/1.1\r\nHost: app.example.com\r\n{FORGED_XF}Connection: close\r\n\r\n"
    );
    assert_eq!(raw::request(gw.addr, &head).await.status, 200);
    let rec = echo.last();
    let xff = rec.header_all("x-forwarded-for").join(",").replace(' ', "");
    assert_eq!(xff, "6.6.6.6,127.0.0.1");
    assert_eq!(rec.header_all("x-forwarded-proto"), vec!["https"]);
    assert_eq!(rec.header_all("x-forwarded-host"), vec!["evil.example"]);
    let head = "GET /pub/g HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n";
    assert_eq!(raw::request(gw.addr, head).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(rec.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(rec.header_all("x-forwarded-host"), vec!["app.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_kept_or_minted() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = public_gateway(&wx, &echo, false).await;
    raw::get(gw.addr, "/pub/id", "X-Request-Id: client-chosen-42\r\n").await;
    assert_eq!(
        echo.last().header_all("x-request-id"),
        vec!["client-chosen-42"]
    );
    raw::get(gw.addr, "/pub/id", "").await;
    let first: Vec<String> = ids(&echo);
    raw::get(gw.addr, "/pub/id", "").await;
    let second: Vec<String> = ids(&echo);
    assert_eq!(first.len(), 1, "minted id: {first:?}");
    assert_eq!(second.len(), 1, "minted id: {second:?}");
    assert!(first[0].len() >= 8, "minted id too short: {first:?}");
    assert_ne!(first, second, "two requests got the same minted id");
}

fn ids(echo: &Echo) -> Vec<String> {
    let rec = echo.last();
    rec.header_all("x-request-id")
        .into_iter()
        .map(str::to_string)
        .collect()
}
