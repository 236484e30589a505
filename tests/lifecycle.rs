//! Shutdown: SIGTERM while a request is in flight to a slow upstream lets it finish with
//! 200, refuses new connections at once, and exits 0; the drain is bounded by
//! `drain_timeout`; SIGINT exits 0 too.

mod common;

use std::time::{Duration, Instant};

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, client, send};

async fn slow_gateway(wx: &FakeWechat, echo: &Echo, drain: &str) -> Gateway {
    GatewayBuilder::new(wx)
        .server("drain_timeout", &format!("\"{drain}\""))
        .route_raw(&format!(
            "prefix = \"/pub/\"\nupstream = \"{}\"\nauth = \"public\"\ntimeout = \"20s\"",
            echo.url
        ))
        .start()
        .await
}

/// True once a TCP connect to `addr` is refused (polled for up to `timeout`).
async fn refused_within(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let c = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        if matches!(c, Ok(Err(_))) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let mut gw = slow_gateway(&wx, &echo, "10s").await;
    let url = gw.url("/pub/slow?ms=2500");
    let in_flight = tokio::spawn(async move { send(client().get(url)).await });
    assert!(
        echo.wait_for(1, Duration::from_secs(3)).await,
        "the slow request never arrived"
    );
    gw.signal("TERM");
    let refused = refused_within(gw.addr, Duration::from_millis(1500)).await;
    assert!(refused, "new connections are still accepted after SIGTERM");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200, "the in-flight request was cut: {}", r.text());
    assert_eq!(r.json()["uri"], "/pub/slow?ms=2500");
    let st = gw.wait_exit(Duration::from_secs(5)).await;
    let st = st.unwrap_or_else(|| panic!("still running after the drain:\n{}", gw.logs()));
    assert_eq!(st.code(), Some(0), "exit status {st:?}:\n{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_drain_timeout() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let mut gw = slow_gateway(&wx, &echo, "500ms").await;
    let url = gw.url("/pub/slow?ms=8000");
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    assert!(
        echo.wait_for(1, Duration::from_secs(3)).await,
        "the slow request never arrived"
    );
    let t0 = Instant::now();
    gw.signal("TERM");
    let st = gw.wait_exit(Duration::from_secs(4)).await;
    let st = st.unwrap_or_else(|| panic!("drain_timeout 500ms not honoured:\n{}", gw.logs()));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        t0.elapsed()
    );
    assert_eq!(st.code(), Some(0), "exit status {st:?}");
    let cut = in_flight.await.unwrap();
    assert!(
        !cut.as_ref().is_ok_and(|r| r.status() == 200),
        "a request still in flight at the drain deadline finished normally: {cut:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_zero() {
    let wx = FakeWechat::start().await;
    let mut gw = GatewayBuilder::new(&wx).start().await;
    gw.signal("INT");
    let st = gw.wait_exit(Duration::from_secs(5)).await;
    let st = st.unwrap_or_else(|| panic!("still running after SIGINT:\n{}", gw.logs()));
    assert_eq!(st.code(), Some(0), "exit status {st:?}:\n{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_when_idle_exits_zero_promptly() {
    let wx = FakeWechat::start().await;
    let mut gw = GatewayBuilder::new(&wx).start().await;
    let t0 = Instant::now();
    gw.signal("TERM");
    let st = gw
        .wait_exit(Duration::from_secs(3))
        .await
        .expect("exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "an idle gateway took {:?}",
        t0.elapsed()
    );
}
