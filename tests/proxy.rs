//! The proxy: prefix routing (first match wins, case-sensitive, 404 otherwise), the three
//! auth kinds, method/path/query/Host/body passed unchanged, the upstream's status, headers
//! and body returned unchanged, streaming both ways, and upstream refused (502) or slow (504).

mod common;

use std::time::{Duration, Instant};

use common::echo::refused;
use common::raw;
use common::{Echo, FakeWechat, GatewayBuilder, assert_error, client, send};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_matching_prefix_wins_and_no_match_is_404() {
    let wx = FakeWechat::start().await;
    let (a, b) = (Echo::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .route("/p/", &a.url, "public")
        .route("/p/long/", &b.url, "public")
        .route("/q/special/", &b.url, "public")
        .route("/q/", &a.url, "public")
        .start()
        .await;
    assert_eq!(gw.call("GET", "/p/long/x", None).await.status, 200);
    assert_eq!(
        (a.count(), b.count()),
        (1, 0),
        "/p/long/x must go to the first route"
    );
    assert_eq!(gw.call("GET", "/q/special/y", None).await.status, 200);
    assert_eq!((a.count(), b.count()), (1, 1));
    assert_eq!(gw.call("GET", "/q/z", None).await.status, 200);
    assert_eq!(a.count(), 2);
    for path in ["/nothing", "/P/x", "/p", "/"] {
        assert_error(&gw.call("GET", path, None).await, 404, "not_found");
    }
    assert_eq!(a.count() + b.count(), 3, "a 404 reached an upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_kinds_gate_requests() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("c", "o-kind", None);
    let gw = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .route("/opt/", &echo.url, "optional")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let unknown = format!("wxg_{}", "B".repeat(43));
    for (path, token) in [
        ("/req/a", None),
        ("/req/a", Some(unknown.as_str())),
        ("/opt/a", Some(&unknown)),
    ] {
        let r = gw.call("GET", path, token).await;
        assert_error(&r, 401, "unauthenticated");
        assert!(
            r.header("www-authenticate")
                .unwrap_or_default()
                .starts_with("Bearer")
        );
    }
    assert_eq!(echo.count(), 0, "a rejected request reached the upstream");
    assert_eq!(gw.call("GET", "/opt/anon", None).await.status, 200);
    let rec = echo.last();
    assert!(
        rec.headers.iter().all(|(k, _)| !k.starts_with("x-wx-")),
        "anonymous got identity: {rec:?}"
    );
    assert_eq!(gw.call("GET", "/pub/anyone", None).await.status, 200);
    let token = gw.token("c").await;
    assert_eq!(gw.call("GET", "/req/b", Some(&token)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-openid"), Some("o-kind"));
    assert_eq!(gw.call("GET", "/opt/b", Some(&token)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-openid"), Some("o-kind"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_path_query_host_and_body_pass_unchanged() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let target = "/pub/a%20b/c.json?x=1&y=%2F..%2F&x=2&empty=";
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let body = format!("body-of-{method}\u{0}\u{7f}");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: app.example.com\r\nContent-Length: {}\r\n\
             X-Custom: one\r\nX-Custom: two\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = raw::request(gw.addr, &head).await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        let rec = echo.last();
        assert_eq!(rec.method, method);
        assert_eq!(rec.uri, target, "path or query rewritten");
        assert_eq!(
            rec.header("host"),
            Some("app.example.com"),
            "Host rewritten"
        );
        assert_eq!(rec.header_all("x-custom"), vec!["one", "two"]);
        assert_eq!(rec.body, body.as_bytes(), "{method} body changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_status_headers_and_body_come_back_unchanged() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    for status in [201u16, 404, 500, 503] {
        let r = gw
            .call("GET", &format!("/pub/custom?status={status}"), None)
            .await;
        assert_eq!(r.status, status, "upstream status replaced: {}", r.text());
        assert_eq!(r.header("x-custom").as_deref(), Some("custom-value"));
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/x-custom")
        );
        let cookies: Vec<_> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(cookies, vec!["a=1", "b=2"], "Set-Cookie duplicates lost");
        assert_eq!(&r.body[..], b"custom-body\x00\xff\x01", "body changed");
    }
}

/// The first chunk reaches the client while the upstream still holds back the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_body_is_streamed() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let first = tokio::time::timeout(Duration::from_secs(3), async {
        let mut resp = client().get(gw.url("/pub/stream")).send().await.unwrap();
        let chunk = resp.chunk().await.unwrap().unwrap_or_default();
        (resp, chunk)
    })
    .await;
    echo.release_stream();
    let (mut resp, chunk) = first.expect("first chunk did not arrive before the last was sent");
    let mut all = chunk.to_vec();
    while let Some(c) = resp.chunk().await.unwrap() {
        all.extend_from_slice(&c);
    }
    assert!(chunk.starts_with(b"first-chunk"), "first chunk: {chunk:?}");
    assert_eq!(all, b"first-chunk\nlast-chunk\n");
}

/// The route timeout bounds the start of the answer, not a body that keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_does_not_cut_a_started_stream() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route_raw(&format!(
            "prefix = \"/pub/\"\nupstream = \"{}\"\nauth = \"public\"\ntimeout = \"400ms\"",
            echo.url
        ))
        .start()
        .await;
    let r = gw.call("GET", "/pub/stream?auto_ms=900", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "first-chunk\nlast-chunk\n");
}

/// The upstream gets the first chunk of a chunked body before the client sends the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_is_streamed() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = "POST /pub/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"6\r\nhello-\r\n").await.unwrap();
    let streamed = echo.upload_first_chunk(Duration::from_secs(3)).await;
    s.write_all(b"5\r\nworld\r\n0\r\n\r\n").await.unwrap();
    let r = raw::read_response(&mut s, Duration::from_secs(5))
        .await
        .expect("response");
    assert!(
        streamed,
        "the upstream saw nothing before the body was complete"
    );
    assert_eq!(r.status, 200);
    assert_eq!(echo.last().body, b"hello-world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upstream_is_502_and_slow_upstream_is_504() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let down = refused();
    let gw = GatewayBuilder::new(&wx)
        .route("/down/", &down.url, "public")
        .route_raw(&format!(
            "prefix = \"/slow/\"\nupstream = \"{}\"\nauth = \"public\"\ntimeout = \"300ms\"",
            echo.url
        ))
        .start()
        .await;
    assert_error(
        &gw.call("GET", "/down/x", None).await,
        502,
        "upstream_unavailable",
    );
    let t0 = Instant::now();
    let r = gw.call("GET", "/slow/slow?ms=2500", None).await;
    assert_error(&r, 504, "upstream_timeout");
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "504 took {:?}",
        t0.elapsed()
    );
    let r = gw.call("GET", "/slow/fast", None).await;
    assert_eq!(
        r.status,
        200,
        "a fast request on the same route: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_within_the_limit_pass_both_ways() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let body: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    let r = send(client().post(gw.url("/pub/big")).body(body.clone())).await;
    assert_eq!(r.status, 200);
    assert_eq!(echo.last().body, body, "a 900 KB body changed on the way");
}

/// The public listener speaks HTTP/2 (prior knowledge, cleartext) as well as HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("h2", "o-h2", None);
    let gw = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = send(
        h2.post(gw.url("/wx/login"))
            .json(&serde_json::json!({"code": "h2"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let r = send(h2.get(gw.url("/req/x")).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echo.last().header("x-wx-openid"), Some("o-h2"));
}
