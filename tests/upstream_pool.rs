//! The upstream pools: each worker keeps its upstream connections open and reuses them
//! (after empty bodies too), never reuses one the upstream closed, and does not make a
//! request wait for a connection whose previous request is still sending its body.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use std::time::{Duration, Instant};

use common::raw;
use common::{FakeWechat, GatewayBuilder};
use tokio::io::AsyncWriteExt;

/// An HTTP/1.1 upstream that counts the connections it accepted. `/empty` answers 204,
/// `/close` answers with `Connection: close`, `/early` answers without reading the
/// request body, anything else 200 with a body.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let response = match req.uri().path() {
                        "/empty" => Response::builder()
                            .status(204)
                            .body(Full::new(Bytes::new())),
                        "/early" => {
                            Response::builder().body(Full::new(Bytes::from_static(b"early")))
                        }
                        "/close" => Response::builder()
                            .header("connection", "close")
                            .body(Full::new(Bytes::from_static(b"bye"))),
                        _ => Response::builder().body(Full::new(Bytes::from_static(b"hello"))),
                    };
                    Ok::<_, Infallible>(response.unwrap_or_default())
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    (addr, accepted, task)
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_bodies_or_not() {
    let wx = FakeWechat::start().await;
    let (addr, accepted, _task) = counting_upstream().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/", &format!("http://{addr}"), "public")
        .start()
        .await;
    for i in 0..30 {
        let path = if i % 2 == 0 { "/empty" } else { "/full" };
        let r = gw.call("GET", path, None).await;
        let want = if i % 2 == 0 { 204 } else { 200 };
        assert_eq!(r.status, want, "request {i} to {path}");
        if want == 200 {
            assert_eq!(r.text(), "hello");
        }
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        opened <= workers(),
        "30 sequential requests opened {opened} upstream connections (workers: {})",
        workers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closed_is_not_reused() {
    let wx = FakeWechat::start().await;
    let (addr, accepted, _task) = counting_upstream().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/", &format!("http://{addr}"), "public")
        .start()
        .await;
    for i in 0..6 {
        let r = gw.call("GET", "/close", None).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "bye");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        6,
        "one connection per `close`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_sending_an_upload_is_not_waited_for() {
    let wx = FakeWechat::start().await;
    let (addr, _accepted, _task) = counting_upstream().await;
    let gw = GatewayBuilder::new(&wx)
        .server("body_timeout", "\"4s\"")
        .route("/", &format!("http://{addr}"), "public")
        .start()
        .await;
    // an upload that stalls after one byte; the upstream answers it at once
    let mut upload = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let head = "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx";
    upload.write_all(head.as_bytes()).await.expect("write");
    let early = raw::read_response(&mut upload, Duration::from_secs(3))
        .await
        .expect("the early answer");
    assert_eq!(early.status, 200);
    // requests on every worker (new connections go round robin) are answered at once,
    // not after the upload's body timeout
    for i in 0..2 * workers() {
        let t0 = Instant::now();
        let r = gw.call("GET", "/full", None).await;
        assert_eq!(r.status, 200, "request {i}");
        assert!(
            t0.elapsed() < Duration::from_millis(1500),
            "request {i} waited {:?} behind a stalled upload",
            t0.elapsed()
        );
    }
}
