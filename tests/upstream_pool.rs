//! The upstream pools: each worker keeps its upstream connections open and reuses them
//! (after empty bodies too), and never reuses one the upstream closed.

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

use common::{FakeWechat, GatewayBuilder};

/// An HTTP/1.1 upstream that counts the connections it accepted. `/empty` answers 204,
/// `/close` answers with `Connection: close`, anything else 200 with a body.
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
