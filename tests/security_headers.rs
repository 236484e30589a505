//! Look-alike and forwarding headers (contract section 5): a header whose name reads as an
//! identity name or the `X-WX-` prefix once every character that is not a letter or digit
//! is taken as `-` is removed on every route; an untrusted peer's `Forwarded`,
//! `X-Real-IP`, `True-Client-IP`, `X-Client-IP`, `X-Forwarded-Port`, `X-Forwarded-Prefix`,
//! `X-Original-URL` and `X-Rewrite-URL` are removed; `X-Real-IP` always carries the client
//! IP the rate limit uses.

mod common;

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, Recorded};

const LOOK_ALIKES: &[&str] = &[
    "X.WX.OPENID",
    "x~wx~openid",
    "X_WX_ACCOUNT_ID",
    "X*WX*PHONE",
    "x.wx.anything",
    "x!wx-appid",
    "X.User.Id",
    "x_user_id",
    "x|user|id",
];

const CLAIMS: &[&str] = &[
    "Forwarded",
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Original-URL",
    "X-Rewrite-URL",
];

async fn gateway(wx: &FakeWechat, echo: &Echo, trusted: bool) -> Gateway {
    let mut b = GatewayBuilder::new(wx)
        .route("/pub/", &echo.url, "public")
        .route("/req/", &echo.url, "required")
        .section("[identity_headers]\naccount_id = \"X-User-Id\"");
    if trusted {
        b = b.server("trusted_proxies", "[\"127.0.0.1/32\"]");
    }
    b.start().await
}

fn lines(names: &[&str], value: &str) -> String {
    names.iter().map(|n| format!("{n}: {value}\r\n")).collect()
}

/// A header name as PHP/CGI reads it.
fn folded(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn assert_no_forged(rec: &Recorded) {
    for (name, value) in &rec.headers {
        assert_ne!(value, "forged", "`{name}` reached the upstream: {rec:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_identity_headers_are_removed() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c", "o-real", None);
    let gw = gateway(&wx, &echo, false).await;
    let forged = format!("{}X-Keep: 1\r\n", lines(LOOK_ALIKES, "forged"));
    let r = raw::get(gw.addr, "/pub/x", &forged).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    assert_no_forged(&rec);
    assert!(
        rec.headers
            .iter()
            .all(|(n, _)| !folded(n).starts_with("x-wx-"))
    );
    assert_eq!(rec.header("x-keep"), Some("1"));
    let token = gw.token("c").await;
    let with_token = format!("{forged}Authorization: Bearer {token}\r\n");
    let r = raw::get(gw.addr, "/req/x", &with_token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    assert_no_forged(&rec);
    assert_eq!(rec.header_all("x-wx-openid"), vec!["o-real"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_claim_forwarding_facts() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo, false).await;
    let forged = format!("{}X_Real_IP: 6.6.6.6\r\n", lines(CLAIMS, "6.6.6.6"));
    let r = raw::get(gw.addr, "/pub/x", &forged).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    for claim in CLAIMS.iter().filter(|c| **c != "X-Real-IP") {
        assert_eq!(rec.header(claim), None, "{claim} forwarded: {rec:?}");
    }
    assert_eq!(rec.header("x_real_ip"), None, "{rec:?}");
    assert_eq!(rec.header_all("x-real-ip"), vec!["127.0.0.1"]);
    assert_eq!(rec.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_x_real_ip_is_the_rate_limited_client() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo, true).await;
    let cases = [
        ("203.0.113.9", "203.0.113.9"),
        ("198.51.100.7, junk, 203.0.113.9", "203.0.113.9"),
        ("198.51.100.7, , 203.0.113.9, 127.0.0.1", "203.0.113.9"),
        ("203.0.113.9, junk", "127.0.0.1"),
        ("203.0.113.9,", "127.0.0.1"),
        ("198.51.100.7, junk, 127.0.0.1", "127.0.0.1"),
    ];
    for (xff, client) in cases {
        let extra =
            format!("X-Forwarded-For: {xff}\r\nX-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 1.2.3.4\r\n");
        let r = raw::get(gw.addr, "/pub/x", &extra).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let rec = echo.last();
        assert_eq!(rec.header_all("x-real-ip"), vec![client], "{xff}");
        assert_eq!(
            rec.header("true-client-ip"),
            Some("1.2.3.4"),
            "a trusted proxy's claim"
        );
    }
    let extra = "X-Forwarded-For: 198.51.100.7, junk\r\nX-Forwarded-For: 203.0.113.10\r\n";
    raw::get(gw.addr, "/pub/x", extra).await;
    assert_eq!(echo.last().header_all("x-real-ip"), vec!["203.0.113.10"]);
}
