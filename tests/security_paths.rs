//! Paths that Java servers and others normalise (contract section 5): `..;/` and `.;/`,
//! encoded NUL, double encoding, `%u` escapes, overlong and other non-UTF-8 escapes and
//! malformed escapes get 400 `invalid_request` and are never forwarded, so a `public`
//! route cannot lead into a `required` one. Escaped unreserved characters are decoded
//! before matching and go upstream decoded; the query is untouched.

mod common;

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error_body};

const BAD: &[&str] = &[
    "/public/..;/api/x",
    "/public/.;/api/x",
    "/public/..;jsessionid=1/api/x",
    "/public/..%3B/api/x",
    "/public/%00",
    "/public/x%00.png",
    "/public/%252e%252e/api/x",
    "/public/%252F",
    "/public/%u002e%u002e/api/x",
    "/public/%U002E",
    "/public/%c0%ae%c0%ae/api/x",
    "/public/%e0%80%ae",
    "/public/%ed%a0%80",
    "/public/%80",
    "/public/%ff",
    "/public/%e4%bd",
    "/public/%zz",
    "/public/%4",
    "/public/%",
    "/api;x/secret",
];

/// `/api/` required, `/public/` and a catch-all `/` public (on another upstream).
async fn gateway(wx: &FakeWechat, api: &Echo, public: &Echo) -> Gateway {
    GatewayBuilder::new(wx)
        .route("/api/", &api.url, "required")
        .route("/public/", &public.url, "public")
        .route("/", &public.url, "public")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_servers_would_read_otherwise_are_refused() {
    let wx = FakeWechat::start().await;
    let (api, public) = (Echo::start().await, Echo::start().await);
    let gw = gateway(&wx, &api, &public).await;
    for path in BAD {
        let r = raw::get(gw.addr, path, "").await;
        assert_eq!(r.status, 400, "{path}: {} {}", r.status, r.text());
        assert_error_body(&r.json(), "invalid_request");
    }
    assert_eq!(
        api.count() + public.count(),
        0,
        "forwarded: {:?} {:?}",
        api.records(),
        public.records()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_unreserved_characters_are_decoded_for_router_and_upstream() {
    let wx = FakeWechat::start().await;
    wx.add_code("c", "o-path", None);
    let (api, public) = (Echo::start().await, Echo::start().await);
    let gw = gateway(&wx, &api, &public).await;
    let r = raw::get(gw.addr, "/ap%69/x", "").await;
    assert_eq!(
        r.status,
        401,
        "/ap%69/x is /api/x, a required route: {}",
        r.text()
    );
    assert_eq!(public.count(), 0, "/ap%69/x went to the public upstream");
    let token = gw.token("c").await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let r = raw::get(gw.addr, "/%61pi/%78?q=%69", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api.last().uri, "/api/x?q=%69");
    let passed = [
        (
            "/public/%7Euser/%2d%5F?next=%2e%2e",
            "/public/~user/-_?next=%2e%2e",
        ),
        ("/public/%E4%BD%A0%e5%a5%bd", "/public/%E4%BD%A0%e5%a5%bd"),
        ("/public/a;jsessionid=1", "/public/a;jsessionid=1"),
        ("/public/100%25", "/public/100%25"),
        ("/public/a%20b", "/public/a%20b"),
    ];
    for (path, upstream) in passed {
        let r = raw::get(gw.addr, path, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(public.last().uri, upstream, "{path}");
    }
}
