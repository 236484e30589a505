//! The client IP behind a trusted proxy (contract section 2): X-Forwarded-For is walked
//! from the right across every such header, skipping trusted addresses; an entry that does
//! not parse, or is empty, ends the walk and the last trusted hop is the client. Nothing
//! left of it keys the login rate limit, so junk in the header neither buys an attacker
//! fresh buckets nor lets them spend a victim's.

mod common;

use common::{FakeWechat, Gateway, GatewayBuilder, Resp, assert_error, send};
use serde_json::json;

const LIMIT: &str = "login_per_minute = 60\nlogin_burst = 3";

async fn behind_trusted_proxy(wx: &FakeWechat) -> Gateway {
    GatewayBuilder::new(wx)
        .rate_limit(LIMIT)
        .server("trusted_proxies", "[\"127.0.0.1/32\"]")
        .start()
        .await
}

/// A login with an unknown code (400 invalid_code unless limited), one X-Forwarded-For
/// header per element of `xff`.
async fn attempt(gw: &Gateway, xff: &[String]) -> Resp {
    let mut req = common::client()
        .post(gw.url("/wx/login"))
        .json(&json!({"code": "nope"}));
    for value in xff {
        req = req.header("x-forwarded-for", value);
    }
    send(req).await
}

/// Four logins whose X-Forwarded-For differ only left of what the gateway may believe:
/// the first three pass, the fourth shares their bucket and is limited.
async fn assert_one_bucket(gw: &Gateway, shape: impl Fn(u8) -> Vec<String>) {
    for i in 0..3 {
        let xff = shape(i);
        let r = attempt(gw, &xff).await;
        assert_eq!(r.status, 400, "{xff:?} within the burst: {}", r.text());
    }
    let xff = shape(3);
    let r = attempt(gw, &xff).await;
    assert_eq!(
        r.status,
        429,
        "{xff:?}: the left-most entry picked a fresh bucket: {}",
        r.text()
    );
    assert_error(&r, 429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_in_forwarded_for_does_not_let_the_left_most_entry_pick_the_bucket() {
    let wx = FakeWechat::start().await;
    let gw = behind_trusted_proxy(&wx).await;
    assert_one_bucket(&gw, |i| vec![format!("198.51.100.{i}, junk, 203.0.113.9")]).await;
    assert_one_bucket(&gw, |i| vec![format!("198.51.100.{i}, , 203.0.113.10")]).await;
    assert_one_bucket(&gw, |i| {
        vec![format!("198.51.100.{i}, junk"), "203.0.113.11".to_string()]
    })
    .await;
    // Junk right-most: the trusted peer itself is the client.
    assert_one_bucket(&gw, |i| vec![format!("203.0.113.{}, junk", 100 + i)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_in_forwarded_for_cannot_lock_a_victim_out() {
    let wx = FakeWechat::start().await;
    let gw = behind_trusted_proxy(&wx).await;
    let forged = vec!["203.0.113.50, junk, 203.0.113.9".to_string()];
    for _ in 0..5 {
        attempt(&gw, &forged).await;
    }
    let victim = vec!["203.0.113.50".to_string()];
    let r = attempt(&gw, &victim).await;
    assert_eq!(
        r.status,
        400,
        "the victim was limited by the attacker's forged entry: {}",
        r.text()
    );
    let r = attempt(&gw, &forged).await;
    assert_error(&r, 429, "rate_limited");
}
