//! HTTP/2 parity on the public listener: over h2c prior knowledge (hyper's client, reqwest
//! and, when it is on PATH, curl) and over TLS with ALPN h2, everything section 5 and the
//! errors of section 6 promise for HTTP/1.1 hold: early answers (413, 401, 404) reach a
//! client still uploading and the connection serves on, identity and forwarding headers are
//! the gateway's, bodies stream both ways, and the explicit h2 limits (streams, header
//! block size, timeouts) are what a client sees.

mod common;
mod tls_pki;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

#[path = "http2/support.rs"]
mod support;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error};
use http::{Method, StatusCode};
use serde_json::json;
use support::{
    CONTINUATION, END_HEADERS, END_STREAM, GOAWAY, H2, HEADERS, RST_STREAM, RawH2, SETTINGS,
    channel_body, chunks, curl_h2, full_body, hpack, reqwest_h2, settings,
};

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

/// The forged headers of section 5: identity look-alikes and an untrusted peer's claims.
const FORGED: [(&str, &str); 10] = [
    ("x-wx-openid", "forged-openid"),
    ("x_wx_openid", "forged-underscore"),
    ("x.wx.openid", "forged-dot"),
    ("x-wx-anything", "forged-prefix"),
    ("forwarded", "for=6.6.6.6;proto=https"),
    ("x-real-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("x-forwarded-for", "6.6.6.6"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "forged.example"),
];

fn forged(mut req: http::request::Builder) -> http::request::Builder {
    for (name, value) in FORGED {
        req = req.header(name, value);
    }
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_headers_are_stripped_and_identity_injected_over_h2() {
    let (wx, echo, gw) = gateway().await;
    let token = gw.login_as(&wx, "o-h2").await;
    let mut h2 = H2::connect(gw.addr).await;
    for (path, auth) in [("/pub/a", None), ("/api/b", Some(&token))] {
        let mut req = forged(h2.request(Method::GET, path)).header("x-request-id", "rid-h2-1");
        if let Some(t) = auth {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let r = h2
            .fetch(req.body(full_body(Bytes::new())).expect("request"))
            .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("x-request-id").as_deref(), Some("rid-h2-1"));
        let rec = echo.last();
        let dump = rec.dump();
        assert!(
            !dump.contains("forged") && !dump.contains("6.6.6.6"),
            "{dump}"
        );
        assert!(
            !dump.contains(&token),
            "the gateway token went upstream: {dump}"
        );
        assert_eq!(rec.header("x-real-ip"), Some("127.0.0.1"), "{dump}");
        assert_eq!(rec.header("x-forwarded-for"), Some("127.0.0.1"), "{dump}");
        assert_eq!(rec.header("x-forwarded-proto"), Some("http"), "{dump}");
        let authority = gw.addr.to_string();
        assert_eq!(
            rec.header("x-forwarded-host"),
            Some(authority.as_str()),
            "{dump}"
        );
        assert_eq!(rec.header("x-request-id"), Some("rid-h2-1"), "{dump}");
        let openid = if auth.is_some() { Some("o-h2") } else { None };
        assert_eq!(rec.header("x-wx-openid"), openid, "{dump}");
        if auth.is_some() {
            assert_eq!(rec.header("x-wx-appid"), Some(wx.appid.as_str()), "{dump}");
        }
    }
    // reqwest too, and a request id the gateway makes up when none comes in.
    let r = common::send(
        reqwest_h2()
            .get(gw.url("/pub/c"))
            .header("x-wx-openid", "forged"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-openid"), None, "{}", rec.dump());
    let id = rec
        .header("x-request-id")
        .expect("a request id")
        .to_string();
    assert_eq!(
        r.header("x-request-id"),
        Some(id),
        "the client sees the same id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_over_h2_and_nothing_reaches_the_upstream() {
    let (wx, echo, gw) = gateway().await;
    let token = gw.login_as(&wx, "o-refused").await;
    let mut h2 = H2::connect(gw.addr).await;
    let two = h2
        .request(Method::GET, "/pub/x")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Basic YTpi")
        .body(full_body(Bytes::new()))
        .expect("request");
    assert_error(&h2.fetch(two).await, 400, "invalid_request");
    for path in ["/pub/../api/x", "/pub/%2e%2e/api/x", "/pub//api/x"] {
        assert_error(&h2.get(path).await, 400, "invalid_request");
    }
    let r = h2.get("/api/x").await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    let r = common::send(reqwest_h2().get(gw.url("/api/x"))).await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(echo.count(), 0, "a refused request reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_stream_both_ways_over_h2() {
    let (_wx, echo, gw) = gateway().await;
    let h2 = H2::connect(gw.addr).await;
    let req = h2
        .request(Method::GET, "/pub/stream")
        .body(full_body(Bytes::new()))
        .expect("request");
    let mut sender = h2.clone_sender();
    let resp = sender.send_request(req).await.expect("response head");
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(
        first.into_data().ok().as_deref(),
        Some(&b"first-chunk\n"[..])
    );
    echo.release_stream();
    let rest = body.collect().await.expect("the rest").to_bytes();
    assert_eq!(&rest[..], b"last-chunk\n");

    let (tx, upload) = channel_body();
    let pending = tokio::spawn({
        let mut h2 = H2::connect(gw.addr).await;
        async move { h2.send(Method::POST, "/pub/upload", None, upload).await }
    });
    tx.send(Bytes::from_static(b"part-one;"))
        .await
        .expect("send");
    assert!(
        echo.upload_first_chunk(Duration::from_secs(5)).await,
        "the first part reached the upstream before the upload ended"
    );
    tx.send(Bytes::from_static(b"part-two"))
        .await
        .expect("send");
    drop(tx);
    let r = pending.await.expect("upload task");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echo.last().body, b"part-one;part-two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_flow_works_over_h2() {
    let (wx, echo, gw) = gateway().await;
    wx.add_code("code-h2", "o-flow", Some("u-flow"));
    let client = reqwest_h2();
    let r = common::send(
        client
            .post(gw.url("/wx/login"))
            .json(&json!({"code": "code-h2"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    assert!(common::is_token(&token));
    let r = common::send(client.get(gw.url("/wx/session")).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["openid"], "o-flow");
    let r = common::send(client.get(gw.url("/api/me")).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echo.last().header("x-wx-unionid"), Some("u-flow"));
    let r = common::send(client.post(gw.url("/wx/logout")).bearer_auth(&token)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = common::send(client.get(gw.url("/api/me")).bearer_auth(&token)).await;
    assert_error(&r, 401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_h2_connections_are_closed() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .server("idle_timeout", "\"400ms\"")
        .server("header_read_timeout", "\"400ms\"")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let mut h2 = H2::connect(gw.addr).await;
    assert_eq!(h2.get("/pub/once").await.status, 200);
    let closed = common::wait_until(Duration::from_secs(5), || !h2.is_open()).await;
    assert!(
        closed,
        "an idle h2 connection stayed open past idle_timeout"
    );

    let mut silent = RawH2::connect(gw.addr).await;
    let (_, ended) = silent.read_until(Duration::from_secs(5), |_| false).await;
    assert!(ended, "a connection that never sent a request stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h2_limits_are_advertised_and_an_oversized_header_block_is_refused() {
    let (_wx, _echo, gw) = gateway().await;
    let mut raw = RawH2::connect(gw.addr).await;
    let (frames, _) = raw
        .read_until(Duration::from_secs(5), |f| {
            f.kind == SETTINGS && f.flags & 1 == 0
        })
        .await;
    let sent = frames
        .last()
        .map(|f| settings(&f.payload))
        .unwrap_or_default();
    assert!(sent.contains(&(3, 128)), "MAX_CONCURRENT_STREAMS: {sent:?}");
    assert!(
        sent.contains(&(4, 256 * 1024)),
        "INITIAL_WINDOW_SIZE: {sent:?}"
    );
    assert!(
        sent.contains(&(6, 64 * 1024)),
        "MAX_HEADER_LIST_SIZE: {sent:?}"
    );

    // A 100 KiB header block over HEADERS and CONTINUATION frames: the stream is refused
    // (431 or a reset), the connection serves the next stream.
    let base = |path: &str| {
        let authority = gw.addr.to_string();
        hpack(&[
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", authority.as_str()),
        ])
    };
    let mut block = base("/pub/big");
    let big = "a".repeat(10_000);
    for i in 0..10 {
        block.extend(hpack(&[(&format!("x-big-{i}"), &big)]));
    }
    let parts: Vec<&[u8]> = block.chunks(16_000).collect();
    for (i, part) in parts.iter().enumerate() {
        let kind = if i == 0 { HEADERS } else { CONTINUATION };
        let end = if i + 1 == parts.len() { END_HEADERS } else { 0 };
        let eos = if i == 0 { END_STREAM } else { 0 };
        assert!(raw.send(kind, end | eos, 1, part).await, "write");
    }
    assert!(
        raw.send(HEADERS, END_HEADERS | END_STREAM, 3, &base("/pub/next"))
            .await
    );
    let (frames, ended) = raw
        .read_until(Duration::from_secs(5), |f| {
            f.stream == 3 && f.flags & END_STREAM != 0
        })
        .await;
    assert!(!ended, "the connection was closed: {frames:?}");
    let on_one: Vec<_> = frames.iter().filter(|f| f.stream == 1).collect();
    assert!(
        on_one
            .iter()
            .any(|f| f.kind == RST_STREAM || f.kind == HEADERS)
            && on_one.iter().all(|f| f.kind != 0),
        "the oversized stream was served: {on_one:?}"
    );

    // A CONTINUATION flood (2 MB in tiny frames) ends the connection; the process serves on.
    let mut flood = RawH2::connect(gw.addr).await;
    assert!(
        flood
            .send(HEADERS, END_STREAM, 1, &base("/pub/flood"))
            .await
    );
    let junk = hpack(&[("x-flood", &"f".repeat(1000))]);
    for _ in 0..2000 {
        if !flood.send(CONTINUATION, 0, 1, &junk).await {
            break;
        }
    }
    let (frames, ended) = flood
        .read_until(Duration::from_secs(5), |f| f.kind == GOAWAY)
        .await;
    assert!(
        ended || frames.iter().any(|f| f.kind == GOAWAY),
        "{frames:?}"
    );
    let mut h2 = H2::connect(gw.addr).await;
    assert_eq!(
        h2.get("/pub/alive").await.status,
        200,
        "the process serves on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_alpn_h2_has_the_same_guarantees() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let ca = tls_pki::Ca::new("h2 test CA");
    let leaf = ca.leaf(&["localhost"]);
    let gw = GatewayBuilder::new(&wx)
        .file("cert.pem", &leaf.cert_pem)
        .file("key.pem", &leaf.key_pem)
        .server("tls", "{ cert = \"cert.pem\", key = \"key.pem\" }")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = TlsConnector::from(tls_pki::client_config(&[ca.der()], &[b"h2"]))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = H2::over(gw.addr, tls).await;
    let req = forged(h2.request(Method::GET, "/pub/tls"));
    let r = h2
        .fetch(req.body(full_body(Bytes::new())).expect("request"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    let dump = rec.dump();
    assert!(
        !dump.contains("forged") && !dump.contains("6.6.6.6"),
        "{dump}"
    );
    assert_eq!(rec.header("x-forwarded-proto"), Some("https"), "{dump}");
    let r = h2
        .send(Method::POST, "/pub/up", None, chunks(TWO_MB, 64 * 1024))
        .await;
    assert_error(&r, 413, "payload_too_large");
    still_serves(&mut h2).await;
}
