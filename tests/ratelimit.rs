//! The per-IP login rate limit: the burst, then 429 `rate_limited` with `Retry-After`;
//! a forged `X-Forwarded-For` from an untrusted peer does not dodge it; a trusted proxy's
//! X-Forwarded-For keys the bucket by the real client; other peers keep their own bucket;
//! `login_per_minute = 0` turns it off.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{FakeWechat, Gateway, GatewayBuilder, Resp, assert_error, send};
use serde_json::json;

const LIMIT: &str = "login_per_minute = 60\nlogin_burst = 3";

async fn limited(wx: &FakeWechat, trusted: bool) -> Gateway {
    let mut b = GatewayBuilder::new(wx).rate_limit(LIMIT);
    if trusted {
        b = b.server("trusted_proxies", "[\"127.0.0.1/32\"]");
    }
    b.start().await
}

/// A login with an unknown code (400 invalid_code unless limited), with an optional XFF,
/// from an optional local source address.
async fn attempt(gw: &Gateway, xff: Option<&str>, from: Option<IpAddr>) -> Resp {
    let mut c = reqwest::Client::builder().no_proxy();
    if let Some(ip) = from {
        c = c.local_address(ip);
    }
    let mut req = c
        .build()
        .unwrap()
        .post(gw.url("/wx/login"))
        .json(&json!({"code": "nope"}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    send(req).await
}

fn assert_limited(r: &Resp) {
    assert_error(r, 429, "rate_limited");
    let ra = r.header("retry-after").expect("Retry-After header");
    let secs: u64 = ra
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {ra:?} is not integer seconds"));
    assert!(secs >= 1, "Retry-After {secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fourth_quick_login_is_limited() {
    let wx = FakeWechat::start().await;
    let gw = limited(&wx, false).await;
    for i in 0..3 {
        let r = attempt(&gw, None, None).await;
        assert_eq!(r.status, 400, "attempt {i} within the burst: {}", r.text());
    }
    assert_limited(&attempt(&gw, None, None).await);
    assert_eq!(
        wx.calls("/sns/jscode2session"),
        3,
        "a limited login still asked WeChat"
    );
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let r = attempt(&gw, None, Some(other)).await;
    assert_eq!(
        r.status,
        400,
        "another client IP shares the bucket: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarded_for_does_not_dodge_the_limit() {
    let wx = FakeWechat::start().await;
    let gw = limited(&wx, false).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let xff = format!("10.9.8.{i}");
        statuses.push(attempt(&gw, Some(&xff), None).await);
    }
    assert_limited(&statuses[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_keys_the_limit_by_the_real_client() {
    let wx = FakeWechat::start().await;
    let gw = limited(&wx, true).await;
    for _ in 0..3 {
        assert_eq!(attempt(&gw, Some("203.0.113.7"), None).await.status, 400);
    }
    assert_limited(&attempt(&gw, Some("203.0.113.7"), None).await);
    let r = attempt(&gw, Some("203.0.113.8"), None).await;
    assert_eq!(
        r.status,
        400,
        "a different client behind the proxy was limited: {}",
        r.text()
    );
    let r = attempt(&gw, Some("203.0.113.7, 127.0.0.1"), None).await;
    assert_limited(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_per_minute_turns_the_limit_off() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .rate_limit("login_per_minute = 0\nlogin_burst = 1")
        .start()
        .await;
    for i in 0..12 {
        let r = attempt(&gw, None, None).await;
        assert_eq!(
            r.status,
            400,
            "attempt {i} limited although the limit is off: {}",
            r.text()
        );
    }
}
