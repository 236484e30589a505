//! The admin listener: `/healthz`, `/readyz`, and `/metrics` in Prometheus text with
//! requests by route and status, login outcomes, the WeChat latency histogram and live
//! sessions; none of these paths is served by the public listener.

mod common;

use std::time::{Duration, Instant};

use common::{Echo, FakeWechat, GatewayBuilder, assert_error, client, send};

/// Sample lines of `metric` (name followed by `{` or a space), comments skipped.
fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .collect()
}

/// The value of a sample line (`name{labels} value [timestamp]` or `name value`).
fn value(line: &str) -> f64 {
    let rest = match line.rsplit_once('}') {
        Some((_, after)) => after,
        None => line.split_once(' ').map(|(_, v)| v).unwrap_or(""),
    };
    let v = rest.split_whitespace().next().unwrap_or("");
    v.parse().unwrap_or_else(|_| panic!("no value in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer_on_admin() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    for path in ["/healthz", "/readyz"] {
        let r = send(client().get(gw.admin_url(path))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = send(client().get(gw.admin_url("/no-such-admin-path"))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_logins_latency_and_sessions() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("ok", "o-metrics", None);
    let gw = GatewayBuilder::new(&wx)
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let token = gw.token("ok").await;
    assert_eq!(gw.login("bad-code").await.status, 400);
    assert_eq!(gw.call("GET", "/pub/m", None).await.status, 200);
    assert_eq!(gw.call("GET", "/nowhere", None).await.status, 404);
    assert_eq!(
        gw.call("GET", "/wx/session", Some(&token)).await.status,
        200
    );
    let m = gw.metrics().await;
    let reqs = samples(&m, "wxgate_http_requests_total");
    assert!(
        reqs.iter()
            .all(|l| l.contains("route=") && l.contains("status=")),
        "{reqs:?}"
    );
    for status in ["200", "404"] {
        let label = format!("status=\"{status}\"");
        assert!(
            reqs.iter().any(|l| l.contains(&label) && value(l) >= 1.0),
            "no {status} in:\n{m}"
        );
    }
    let logins = samples(&m, "wxgate_login_total");
    assert!(logins.iter().all(|l| l.contains("outcome=")), "{logins:?}");
    assert!(
        logins
            .iter()
            .any(|l| l.contains("invalid_code") && value(l) >= 1.0),
        "no invalid_code outcome:\n{m}"
    );
    assert!(
        logins.iter().filter(|l| value(l) >= 1.0).count() >= 2,
        "success not counted:\n{m}"
    );
    let buckets = samples(&m, "wxgate_wechat_request_duration_seconds_bucket");
    assert!(
        buckets.iter().any(|l| l.contains("api=")),
        "no histogram buckets with api:\n{m}"
    );
    let count = samples(&m, "wxgate_wechat_request_duration_seconds_count");
    assert!(
        count.iter().map(|l| value(l)).sum::<f64>() >= 2.0,
        "WeChat calls not timed:\n{m}"
    );
    assert!(
        live_sessions_counted(&gw).await,
        "live session not counted within 2 s:\n{}",
        gw.metrics().await
    );
}

/// The sessions gauge may lag a little (a cache's pending tasks): poll it for up to 2 s.
async fn live_sessions_counted(gw: &common::Gateway) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let m = gw.metrics().await;
        if samples(&m, "wxgate_sessions")
            .iter()
            .map(|l| value(l))
            .sum::<f64>()
            >= 1.0
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_paths_are_not_on_the_public_listener() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/healthz", &echo.url, "public")
        .start()
        .await;
    for path in ["/readyz", "/metrics"] {
        assert_error(&gw.call("GET", path, None).await, 404, "not_found");
    }
    let r = gw.call("GET", "/healthz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        echo.last().uri,
        "/healthz",
        "/healthz on the public side must be the route"
    );
}
