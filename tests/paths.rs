//! Path normal form (contract section 5): dot segments, `//`, backslashes and
//! percent-encoded `/`, `\` or `.` get 400 `invalid_request` and never reach an upstream,
//! even through a catch-all `public` route; ordinary paths and queries still pass.

mod common;

use common::raw;
use common::{Echo, FakeWechat, GatewayBuilder, assert_error_body};

const BAD: &[&str] = &[
    "/api/../x",
    "/static/../api/x",
    "/api/./x",
    "/api/.",
    "/api/..",
    "//api/x",
    "/api//x",
    "/api\\x",
    "/api/\\x",
    "/api/%2e%2e/x",
    "/api/%2E%2E/x",
    "/api/%2e/x",
    "/static/%2e%2e/api/x",
    "/api%2Fx",
    "/api%2fx",
    "/api/%5cx",
    "/api/%5Cx",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_not_in_normal_form_are_rejected_and_not_forwarded() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/api/", &echo.url, "required")
        .route("/", &echo.url, "public")
        .start()
        .await;
    for path in BAD {
        let r = raw::get(gw.addr, path, "").await;
        assert_eq!(r.status, 400, "{path}: {} {}", r.status, r.text());
        assert_error_body(&r.json(), "invalid_request");
    }
    assert_eq!(echo.count(), 0, "forwarded: {:?}", echo.records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_paths_and_queries_pass() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/", &echo.url, "public")
        .start()
        .await;
    let good = [
        "/static/app.min.js",
        "/static/a..b/c",
        "/static/.well-known/x",
        "/static/a%20b",
        "/static/x?next=//evil/../y&p=%2F",
    ];
    for path in good {
        let r = raw::get(gw.addr, path, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(echo.last().uri, path);
    }
}
