//! `[server] body_timeout` (contract section 9): a request body that moves no byte for
//! that long gets 408 `request_timeout` on the gateway's own endpoints and a closed
//! connection on proxied routes, where the upstream request is aborted, never completed;
//! a client that reads nothing of a large streamed response has its connection closed and
//! the gateway lets go of the upstream, so neither a `max_connections` slot nor an
//! upstream connection is held; slow bodies that keep moving are not cut.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::probe::{BodyOutcome, Probe};
use common::raw;
use common::{FakeWechat, Gateway, GatewayBuilder, assert_error_body, client, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn gateway(wx: &FakeWechat, probe: &Probe, max_connections: usize) -> Gateway {
    GatewayBuilder::new(wx)
        .server("body_timeout", "\"1s\"")
        .server("header_read_timeout", "\"10s\"")
        .server("max_connections", &max_connections.to_string())
        .route("/pub/", &probe.url, "public")
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_login_body_gets_408_and_a_closed_connection() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 100).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = "POST /wx/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
    s.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let r = raw::read_response(&mut s, Duration::from_secs(6)).await;
    let took = t0.elapsed();
    let r = r.expect("no answer within 6 s to a stalled body (body_timeout is 1 s)");
    assert_eq!(r.status, 408, "{}", r.text());
    assert_error_body(&r.json(), "request_timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        took >= Duration::from_millis(800),
        "cut off early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(raw::wait_closed(&mut s, Duration::from_secs(2)).await);
    assert_eq!(wx.calls("/sns/jscode2session"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_off_and_the_upstream_request_aborted() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 100).await;
    for framing in ["Content-Length: 100\r\n", "Transfer-Encoding: chunked\r\n"] {
        let before = probe.bodies().len();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = format!("POST /pub/upload HTTP/1.1\r\nHost: x\r\n{framing}\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let first: &[u8] = if framing.contains("chunked") {
            b"a\r\n0123456789\r\n"
        } else {
            b"0123456789"
        };
        s.write_all(first).await.unwrap();
        let t0 = Instant::now();
        // Either a 408 (with Connection: close) or a plain close is fine; then EOF.
        let r = raw::read_response(&mut s, Duration::from_secs(6)).await;
        if let Some(r) = &r {
            assert_eq!(r.status, 408, "{framing}: {}", r.text());
            assert_eq!(r.header("connection"), Some("close"));
        }
        assert!(
            raw::wait_closed(&mut s, Duration::from_secs(6)).await,
            "{framing}: the stalled upload still holds its connection"
        );
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(800),
            "cut off early: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(
            probe.wait_bodies(before + 1, Duration::from_secs(3)).await,
            "{framing}: the upstream request is still open"
        );
        assert_eq!(probe.bodies()[before], BodyOutcome::Broken(10), "{framing}");
    }
    assert_eq!(probe.completed(), 0);
}

/// Send `body` to `path` in pieces of `piece` bytes, `gap` apart; the response.
async fn trickle(addr: SocketAddr, path: &str, body: &[u8], piece: usize, gap: Duration) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for part in body.chunks(piece) {
        tokio::time::sleep(gap).await;
        s.write_all(part).await.unwrap();
    }
    let r = raw::read_response(&mut s, Duration::from_secs(5)).await;
    r.expect("no response to a slow body").status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_that_keep_moving_are_not_cut() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    wx.add_code("slow-code", "o-slow", None);
    let gw = gateway(&wx, &probe, 100).await;
    let gap = Duration::from_millis(400);
    let login = br#"{"code":"slow-code"}"#;
    let (a, b) = tokio::join!(
        trickle(gw.addr, "/wx/login", login, 3, gap),
        trickle(gw.addr, "/pub/upload", b"0123456789abcdef", 2, gap),
    );
    assert_eq!(a, 200, "a slow login was cut");
    assert_eq!(b, 200, "a slow upload was cut");
    assert_eq!(
        probe.bodies(),
        vec![BodyOutcome::Complete(b"0123456789abcdef".to_vec())]
    );
}

/// A connection with a small receive buffer that sends `GET path` and then reads nothing.
async fn stalled_reader(addr: SocketAddr, path: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_cut_off_and_the_upstream_released() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 1).await;
    let total: u64 = 1 << 30;
    let mut s = stalled_reader(gw.addr, &format!("/pub/big?bytes={total}")).await;
    assert!(
        common::wait_until(Duration::from_secs(3), || !probe.streams().is_empty()).await,
        "the upstream never got the request"
    );
    let t0 = Instant::now();
    assert!(
        probe.wait_stream_dropped(Duration::from_secs(8)).await,
        "the gateway still holds the upstream stream of a client that reads nothing"
    );
    let took = t0.elapsed();
    let stream = probe.streams()[0].clone();
    let sent = stream.sent.load(Ordering::SeqCst);
    println!("stalled reader cut after {took:?}; the upstream had sent {sent} bytes");
    assert!(!stream.finished.load(Ordering::SeqCst));
    assert!(sent < total);
    assert!(
        took >= Duration::from_millis(800),
        "cut off early: {took:?}"
    );
    // the slot is free again (max_connections = 1), and the client sees the close
    let r = send(client().post(gw.url("/pub/after")).body("ok")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(raw::wait_closed(&mut s, Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_that_keeps_reading_gets_the_whole_response() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 100).await;
    let total: usize = 3 << 20;
    let mut s = stalled_reader(gw.addr, &format!("/pub/big?bytes={total}")).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    // 256 KiB per 300 ms tick, with pauses shorter than body_timeout (1 s)
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut tick = 0usize;
        while tick < 256 * 1024 {
            match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => tick += n,
                Err(_) => break,
            }
        }
        got += tick;
        if got >= total {
            break;
        }
    }
    let stream = probe.streams()[0].clone();
    assert!(
        stream.finished.load(Ordering::SeqCst),
        "the upstream stream did not finish; the client read {got} of {total}"
    );
    assert!(got >= total, "read {got} of {total} (head included)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_reads_nothing_is_cut_off_too() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 1).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://{}/pub/big?bytes={}", gw.addr, 1u64 << 30))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    // The response's body is never polled, so no WINDOW_UPDATE is ever sent.
    let response = sender.send_request(req).await.expect("response head");
    assert_eq!(response.status(), 200);
    let t0 = Instant::now();
    assert!(
        probe.wait_stream_dropped(Duration::from_secs(8)).await,
        "the gateway still holds the upstream stream of an HTTP/2 client that reads nothing"
    );
    let took = t0.elapsed();
    println!("stalled HTTP/2 reader cut after {took:?}");
    assert!(
        took >= Duration::from_millis(800),
        "cut off early: {took:?}"
    );
    let r = send(client().post(gw.url("/pub/after")).body("ok")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(response);
    conn.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http2_reader_that_keeps_reading_gets_the_whole_response() {
    use http_body_util::BodyExt;
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe, 100).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(256 * 1024)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let total: usize = 3 << 20;
    let req = hyper::Request::get(format!("http://{}/pub/big?bytes={total}", gw.addr))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let mut body = sender
        .send_request(req)
        .await
        .expect("response head")
        .into_body();
    let mut got = 0usize;
    // 512 KiB per 400 ms tick: pauses shorter than body_timeout (1 s)
    'read: loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let tick_end = got + 512 * 1024;
        while got < tick_end {
            match body.frame().await {
                Some(Ok(frame)) => got += frame.data_ref().map_or(0, |d| d.len()),
                Some(Err(e)) => panic!("the slow HTTP/2 reader was cut after {got} bytes: {e}"),
                None => break 'read,
            }
        }
    }
    assert!(probe.streams()[0].finished.load(Ordering::SeqCst));
    assert_eq!(got, total);
    conn.abort();
}
