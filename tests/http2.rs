//! HTTP/2 parity on the public listener: over h2c prior knowledge (hyper's client, reqwest
//! and, when it is on PATH, curl) and over TLS with ALPN h2, everything section 5 and the
//! errors of section 6 promise for HTTP/1.1 hold: early answers (413, 401, 404) reach a
//! client still uploading and the connection serves on, identity and forwarding headers are
//! the gateway's, bodies stream both ways, and the explicit h2 limits (streams, header
//! block size, timeouts) are what a client sees.

mod common;

#[path = "http2/support.rs"]
mod support;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error};
use http::{Method, StatusCode};
use serde_json::json;
use support::{H2, chunks, curl_h2, full_body};

const TWO_MB: usize = 2 * 1024 * 1024;

/// A gateway with public, optional and required routes to one echo upstream.
async fn gateway() -> (FakeWechat, Echo, Gateway) {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .route("/opt/", &echo.url, "optional")
        .route("/api/", &echo.url, "required")
        .start()
        .await;
    (wx, echo, gw)
}

/// The next request on the same h2 connection is served (the early answer broke nothing).
async fn still_serves(h2: &mut H2) {
    let r = h2.get("/pub/after").await;
    assert_eq!(
        r.status,
        200,
        "the connection no longer serves: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_get_the_413_json_and_the_connection_serves_on() {
    let (wx, echo, gw) = gateway().await;
    let token = gw.login_as(&wx, "o-big").await;
    let mut h2 = H2::connect(gw.addr).await;
    for path in ["/pub/up", "/opt/up", "/api/up", "/wx/login"] {
        let declared = h2
            .send(
                Method::POST,
                path,
                Some(&token),
                full_body(vec![b'x'; TWO_MB]),
            )
            .await;
        assert_error(&declared, 413, "payload_too_large");
        still_serves(&mut h2).await;
        let streamed = h2
            .send(Method::POST, path, Some(&token), chunks(TWO_MB, 64 * 1024))
            .await;
        assert_error(&streamed, 413, "payload_too_large");
        still_serves(&mut h2).await;
    }
    let limit = 1024 * 1024;
    let records = echo.records();
    assert!(
        records.iter().all(|r| r.body.len() <= limit),
        "a body past max_body_bytes reached the upstream"
    );
    assert_eq!(records.iter().filter(|r| r.uri == "/pub/after").count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_early_answers_reach_a_client_still_uploading() {
    let (_wx, echo, gw) = gateway().await;
    let mut h2 = H2::connect(gw.addr).await;
    let r = h2
        .send(Method::POST, "/api/up", None, chunks(TWO_MB, 64 * 1024))
        .await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    still_serves(&mut h2).await;
    let r = h2
        .send(Method::POST, "/nowhere", None, chunks(TWO_MB, 64 * 1024))
        .await;
    assert_error(&r, 404, "not_found");
    still_serves(&mut h2).await;
    assert_eq!(echo.count(), 2, "only the follow-ups reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_the_early_answers_over_h2_as_over_http1() {
    let (wx, echo, gw) = gateway().await;
    let token = gw.login_as(&wx, "o-curl").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (big, under) = (dir.path().join("big.bin"), dir.path().join("under.bin"));
    std::fs::write(&big, vec![b'x'; TWO_MB]).expect("write the upload");
    // Declared within the limit: the early answer is the only one the gateway can give.
    std::fs::write(&under, vec![b'x'; 1000 * 1024]).expect("write the upload");
    let (big, under) = (
        format!("@{}", big.display()),
        format!("@{}", under.display()),
    );
    let auth = format!("Authorization: Bearer {token}");
    let cases: [(&str, Option<&str>, &str, u16, &str); 6] = [
        ("/pub/up", None, &big, 413, "payload_too_large"),
        ("/opt/up", Some(&auth), &big, 413, "payload_too_large"),
        ("/api/up", Some(&auth), &big, 413, "payload_too_large"),
        ("/wx/login", None, &big, 413, "payload_too_large"),
        ("/api/up", None, &under, 401, "unauthenticated"),
        ("/nowhere", None, &under, 404, "not_found"),
    ];
    for (path, header, declared, status, code) in cases {
        let url = gw.url(path);
        let mut args = vec!["-X", "POST", &url];
        if let Some(h) = header {
            args.extend(["-H", h]);
        }
        let with_length = [args.as_slice(), &["--data-binary", declared]].concat();
        let Some(r) = curl_h2(&with_length, None).await else {
            return;
        };
        r.assert_error(status, code, &format!("{path} with Content-Length"));
        let streamed = [args.as_slice(), &["-T", "-"]].concat();
        let r = curl_h2(&streamed, Some(vec![b'y'; TWO_MB])).await;
        if let Some(r) = r {
            r.assert_error(status, code, &format!("{path} streamed"));
        }
    }
    let limit = 1024 * 1024;
    assert!(
        echo.records().iter().all(|r| r.body.len() <= limit),
        "a body past max_body_bytes reached the upstream"
    );
    let r = curl_h2(&[&gw.url("/pub/ok")], None).await;
    assert!(r.is_some_and(|r| r.status == 200), "the gateway serves on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_within_the_limit_streams_to_the_upstream_over_h2() {
    let (_wx, echo, gw) = gateway().await;
    let mut h2 = H2::connect(gw.addr).await;
    let size = 1024 * 1024 - 10;
    let r = h2
        .send(Method::POST, "/pub/upload", None, chunks(size, 16 * 1024))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let rec = echo.last();
    assert_eq!(rec.body.len(), size, "the whole upload arrived");
    assert_eq!(r.json()["method"], json!("POST"));
}
