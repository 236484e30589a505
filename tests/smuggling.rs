//! Request smuggling shapes (contract section 9): both `Content-Length` and
//! `Transfer-Encoding`, more than one `Content-Length` (even equal ones), a
//! `Transfer-Encoding` that is not exactly `chunked`, and look-alike spellings of the two
//! names get 400 and a closed connection, as nginx >= 1.21.1 does — also as the second
//! request of a keep-alive connection — and nothing of them reaches the upstream or the
//! gateway's own endpoints. A bad chunk size ends the request: 400, and the upstream
//! request already under way is aborted, never completed. Ordinary chunked and
//! fixed-length bodies, kept alive, still pass.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::probe::{BodyOutcome, Probe};
use common::raw::{self, RawResponse};
use common::{FakeWechat, Gateway, GatewayBuilder, assert_error_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(wx: &FakeWechat, probe: &Probe) -> Gateway {
    GatewayBuilder::new(wx)
        .route("/pub/", &probe.url, "public")
        .start()
        .await
}

/// Send `bytes` on a new connection; the first response and whether the gateway then
/// closed the connection (EOF within 3 s).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (RawResponse, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let r = raw::read_response(&mut s, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(bytes)));
    let closed = raw::wait_closed(&mut s, Duration::from_secs(3)).await;
    (r, closed)
}

/// A 400 that closed the connection; a body, when there is one, is the contract's JSON.
fn assert_refused(r: &RawResponse, closed: bool, what: &str) {
    assert_eq!(r.status, 400, "{what}: {} {}", r.status, r.text());
    assert!(closed, "{what}: the connection stayed open after the 400");
    if !r.body.is_empty() {
        assert_error_body(&r.json(), "invalid_request");
    }
}

/// Framing header lines and a body for each shape that must be refused.
const SHAPES: &[(&str, &str, &str)] = &[
    (
        "CL then TE",
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\nG",
    ),
    (
        "TE then CL",
        "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
        "0\r\n\r\nG",
    ),
    (
        "CL and an odd-case TE",
        "content-length: 6\r\nTRANSFER-ENCODING: Chunked\r\n",
        "0\r\n\r\nG",
    ),
    (
        "two equal CL",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "hello",
    ),
    ("CL 5, 5", "Content-Length: 5, 5\r\n", "hello"),
    (
        "two different CL",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "hello!",
    ),
    (
        "TE chunked, gzip",
        "Transfer-Encoding: chunked, gzip\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    ("TE gzip", "Transfer-Encoding: gzip\r\n", "hello"),
    (
        "TE gzip, chunked",
        "Transfer-Encoding: gzip, chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "TE chunked, chunked",
        "Transfer-Encoding: chunked, chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "two TE lines",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "TE quoted",
        "Transfer-Encoding: \"chunked\"\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "TE empty last coding",
        "Transfer-Encoding: chunked,\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
    (
        "Transfer_Encoding look-alike",
        "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n",
        "hello",
    ),
    (
        "Content_Length look-alike",
        "Content_Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
    ),
];

/// The shapes whose framing hyper accepts, so the gateway's own check must answer (JSON).
const OURS: &[&str] = &[
    "CL then TE",
    "TE then CL",
    "CL and an odd-case TE",
    "two equal CL",
    "TE gzip, chunked",
    "TE chunked, chunked",
    "two TE lines",
    "Transfer_Encoding look-alike",
    "Content_Length look-alike",
];

fn post(path: &str, framing: &str, body: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n{body}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_get_400_and_a_closed_connection() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    wx.add_code("ok", "o-smuggle", None);
    let gw = gateway(&wx, &probe).await;
    for (what, framing, body) in SHAPES {
        for path in ["/pub/x", "/wx/login"] {
            let (r, closed) = exchange(gw.addr, post(path, framing, body).as_bytes()).await;
            let shown = format!("{what} on {path}");
            assert_refused(&r, closed, &shown);
            if OURS.contains(what) {
                assert_error_body(&r.json(), "invalid_request");
                assert_eq!(r.header("connection"), Some("close"), "{shown}");
            }
        }
    }
    assert_eq!(probe.heads(), 0, "the upstream saw {:?}", probe.bodies());
    assert_eq!(wx.calls("/sns/jscode2session"), 0, "a login went through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smuggling_shape_later_on_a_kept_alive_connection_is_refused() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe).await;
    // Ordinary requests first (fixed length, chunked with an extension and a trailer, no
    // body), whose bodies even look like heads, then the smuggling shape.
    let firsts = [
        post(
            "/pub/a",
            "Content-Length: 48\r\n",
            "x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
        ),
        post(
            "/pub/b",
            "Transfer-Encoding: chunked\r\n",
            "3;ext=1\r\nabc\r\n10\r\nContent-Length: \r\n0\r\nX-Trailer: 1\r\n\r\n",
        ),
        "GET /pub/c HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
    ];
    for (i, first) in firsts.iter().enumerate() {
        for (what, framing, body) in SHAPES.iter().filter(|s| OURS.contains(&s.0)) {
            let heads = probe.heads();
            let mut s = TcpStream::connect(gw.addr).await.unwrap();
            s.write_all(first.as_bytes()).await.unwrap();
            let r = raw::read_response(&mut s, Duration::from_secs(5)).await;
            let r = r.unwrap_or_else(|| panic!("first request {i}: no response"));
            assert_eq!(r.status, 200, "first request {i}: {}", r.text());
            s.write_all(post("/pub/x", framing, body).as_bytes())
                .await
                .unwrap();
            let r = raw::read_response(&mut s, Duration::from_secs(5)).await;
            let r = r.unwrap_or_else(|| panic!("{what} after {i}: no response"));
            let closed = raw::wait_closed(&mut s, Duration::from_secs(3)).await;
            assert_refused(&r, closed, &format!("{what} after request {i}"));
            assert_error_body(&r.json(), "invalid_request");
            assert_eq!(
                probe.heads(),
                heads + 1,
                "{what} after {i} reached the upstream"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_framing_still_passes_and_stays_alive() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe).await;
    let requests = [
        post("/pub/1", "Content-Length: 5\r\n", "hello"),
        post(
            "/pub/2",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        post(
            "/pub/3",
            "Transfer-Encoding: Chunked \r\n",
            "2 ; a=b\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        ),
        post(
            "/pub/4",
            "transfer-encoding: CHUNKED\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        post("/pub/5", "Content-Length: 0\r\n", ""),
        "GET /pub/6 HTTP/1.1\r\nHost: x\r\nX-Content-Length: 5\r\n\r\n".to_string(),
        post("/pub/7", "Content-Length:  5\r\n", "hello"),
    ];
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    for (i, req) in requests.iter().enumerate() {
        s.write_all(req.as_bytes()).await.unwrap();
        let r = raw::read_response(&mut s, Duration::from_secs(5)).await;
        let r = r.unwrap_or_else(|| panic!("request {i}: no response"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_ne!(r.header("connection"), Some("close"), "request {i}");
    }
    let bodies = probe.bodies();
    let hello = BodyOutcome::Complete(b"hello".to_vec());
    assert_eq!(bodies.len(), requests.len());
    for i in [0, 1, 2, 3, 6] {
        assert_eq!(bodies[i], hello, "request {i}");
    }
    // pipelined (the second asks to close, so the answers end at EOF): both answered
    let two = format!(
        "{}{}",
        post(
            "/pub/p1",
            "Transfer-Encoding: chunked\r\n",
            "1\r\na\r\n0\r\n\r\n"
        ),
        post("/pub/p2", "Content-Length: 1\r\nConnection: close\r\n", "b")
    );
    s.write_all(two.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all)).await;
    assert!(matches!(read, Ok(Ok(_))), "pipelined answers did not end");
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert!(text.contains("received 1 bytes"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_size_aborts_the_upstream_request_and_gets_400() {
    let (wx, probe) = (FakeWechat::start().await, Probe::start().await);
    let gw = gateway(&wx, &probe).await;
    for bad in [
        "zz\r\n",
        "5\r\nhello\r\n-1\r\n",
        "ffffffffffffffffff\r\n",
        "5\nhello",
    ] {
        let before = probe.bodies().len();
        let heads = probe.heads();
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        let head = "POST /pub/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(b"5\r\nhello\r\n").await.unwrap();
        assert!(
            common::wait_until(Duration::from_secs(3), || probe.heads() > heads).await,
            "the upstream request never started"
        );
        s.write_all(bad.as_bytes()).await.unwrap();
        let r = raw::read_response(&mut s, Duration::from_secs(5)).await;
        let r = r.unwrap_or_else(|| panic!("{bad:?}: no response"));
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
        assert_error_body(&r.json(), "invalid_request");
        assert!(raw::wait_closed(&mut s, Duration::from_secs(3)).await);
        assert!(probe.wait_bodies(before + 1, Duration::from_secs(3)).await);
        let outcome = probe.bodies()[before].clone();
        assert!(
            matches!(outcome, BodyOutcome::Broken(_)),
            "{bad:?}: the upstream body was {outcome:?}"
        );
    }
    assert_eq!(probe.completed(), 0, "an aborted body completed upstream");
    // on the gateway's own endpoint: 400 too
    let head = "POST /wx/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (r, closed) = exchange(gw.addr, format!("{head}3\r\n{{\"c\r\nzz\r\n").as_bytes()).await;
    assert_refused(&r, closed, "a bad chunk on /wx/login");
    assert_error_body(&r.json(), "invalid_request");
}
