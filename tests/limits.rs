//! Connection and body limits: `max_body_bytes` (413 with Content-Length up front and when
//! a chunked body passes the limit mid-stream, on `/wx/login` and on a proxied route),
//! `header_read_timeout`, `idle_timeout` and `max_connections`.

mod common;

use std::time::{Duration, Instant};

use common::raw::{self, RawResponse};
use common::{
    Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, assert_error_body, client, send,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn small_body_gateway(wx: &FakeWechat, echo: &Echo) -> Gateway {
    GatewayBuilder::new(wx)
        .server("max_body_bytes", "1024")
        .route("/pub/", &echo.url, "public")
        .start()
        .await
}

/// Send a chunked POST in 512-byte chunks while reading the answer concurrently (the
/// gateway may answer 413 and close before the body is done).
async fn chunked_post(gw: &Gateway, path: &str, chunks: usize) -> RawResponse {
    let s = TcpStream::connect(gw.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.ok()?;
        let chunk = format!("200\r\n{}\r\n", "a".repeat(512));
        for _ in 0..chunks {
            wr.write_all(chunk.as_bytes()).await.ok()?;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        wr.write_all(b"0\r\n\r\n").await.ok()?;
        Some(wr)
    });
    let r = raw::read_response(&mut rd, Duration::from_secs(5)).await;
    let _ = writer.await;
    r.expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_with_content_length_get_413() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = small_body_gateway(&wx, &echo).await;
    let big = format!("{{\"code\":\"x\",\"pad\":\"{}\"}}", "a".repeat(2000));
    let r = send(
        client()
            .post(gw.url("/wx/login"))
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(wx.calls("/sns/jscode2session"), 0);
    let r = send(client().post(gw.url("/pub/up")).body(big)).await;
    assert_error(&r, 413, "payload_too_large");
    let exact = vec![b'z'; 1024];
    let r = send(client().post(gw.url("/pub/exact")).body(exact.clone())).await;
    assert_eq!(
        r.status,
        200,
        "a body of exactly max_body_bytes: {}",
        r.text()
    );
    assert_eq!(echo.last().body, exact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_bodies_get_413_mid_stream() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = small_body_gateway(&wx, &echo).await;
    for path in ["/wx/login", "/pub/up"] {
        let r = chunked_post(&gw, path, 4).await;
        assert_eq!(r.status, 413, "{path}: {}", r.text());
        assert_error_body(&r.json(), "payload_too_large");
    }
    assert_eq!(wx.calls("/sns/jscode2session"), 0);
    assert!(
        echo.records().iter().all(|r| r.body.len() <= 1024),
        "the upstream got more than the limit"
    );
    let r = chunked_post(&gw, "/pub/ok", 2).await;
    assert_eq!(
        r.status,
        200,
        "a chunked body of exactly the limit: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_its_headers_is_cut_off() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .server("header_read_timeout", "\"300ms\"")
        .start()
        .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /some/pa").await.unwrap();
    let t0 = Instant::now();
    let closed = raw::wait_closed(&mut s, Duration::from_secs(3)).await;
    let took = t0.elapsed();
    assert!(closed, "a stalled request line was kept open for 3 s");
    assert!(
        took >= Duration::from_millis(200),
        "cut off before the timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .server("idle_timeout", "\"600ms\"")
        .server("header_read_timeout", "\"5s\"")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let req = "GET /pub/ka HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..2 {
        s.write_all(req.as_bytes()).await.unwrap();
        let r = raw::read_response(&mut s, Duration::from_secs(3))
            .await
            .expect("keep-alive response");
        assert_eq!(r.status, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let t0 = Instant::now();
    let closed = raw::wait_closed(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "idle connection still open after 4 s");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_holds_back_the_extra_one() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .server("max_connections", "2")
        .server("header_read_timeout", "\"10s\"")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let req = "GET /pub/mc HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let r = raw::read_response(&mut s, Duration::from_secs(3))
            .await
            .expect("served");
        assert_eq!(r.status, 200);
        held.push(s);
    }
    let addr = gw.addr;
    let third = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        raw::read_response(&mut s, Duration::from_secs(5)).await
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !third.is_finished(),
        "a third connection was answered (or dropped) while two were open"
    );
    drop(held.remove(0));
    let r = third.await.unwrap();
    let r = r.expect("the third connection was not served after one closed");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_body_limit_is_one_mib() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let r = send(client().post(gw.url("/pub/at")).body(vec![b'x'; 1_048_576])).await;
    assert_eq!(r.status, 200, "exactly 1 MiB: {}", r.text());
    let r = send(
        client()
            .post(gw.url("/pub/over"))
            .body(vec![b'x'; 1_048_577]),
    )
    .await;
    assert_error(&r, 413, "payload_too_large");
}
