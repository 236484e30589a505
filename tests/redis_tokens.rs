//! access_tokens shared through Redis by two gateway instances: one stable_token fetch for
//! both, 40 concurrent phone calls across both on a token WeChat just invalidated (at most
//! 2 fetches, all succeed), and proxied requests/s with the Redis store next to the memory
//! store, measured the same way. Skips without redis-server unless `CI` is set.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisServer, encryption_key, redis_sections};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, client, send};
use serde_json::json;

const STABLE: &str = "/cgi-bin/stable_token";
const PHONE: &str = "/wxa/business/getuserphonenumber";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_calls_across_two_replicas_on_an_invalidated_token() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let wx = FakeWechat::start().await;
    let b = GatewayBuilder::new(&wx).section(&redis_sections(&redis.url(), &encryption_key()));
    let (a, bb) = (b.clone().start().await, b.start().await);
    let mut calls = Vec::new();
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &bb };
        let token = gw.login_as(&wx, &format!("o-{i}")).await;
        wx.add_phone_code(&format!("p{i}"), &format!("139{i:08}"), "86");
        calls.push((gw.url("/wx/phone"), token, format!("p{i}")));
    }
    // warm both replicas: the second one must take the stored token, not fetch its own
    for (i, gw) in [&a, &bb].into_iter().enumerate() {
        let token = gw.login_as(&wx, &format!("o-warm-{i}")).await;
        wx.add_phone_code(&format!("w{i}"), "13800138000", "86");
        assert_eq!(gw.phone(&token, &format!("w{i}")).await.status, 200);
    }
    assert_eq!(wx.calls(STABLE), 1, "two replicas fetched their own tokens");

    wx.invalidate_token(&wx.appid);
    wx.set_path_delay(PHONE, Duration::from_millis(30));
    wx.set_path_delay(STABLE, Duration::from_millis(50));
    let before = wx.calls(STABLE);
    let mut set = tokio::task::JoinSet::new();
    for (url, token, code) in calls {
        set.spawn(async move {
            let req = client().post(url).bearer_auth(token);
            send(req.json(&json!({ "code": code }))).await
        });
    }
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let fetches = wx.calls(STABLE) - before;
    println!("40 phone calls across 2 replicas on an invalidated token: {fetches} fetch(es)");
    assert!((1..=2).contains(&fetches), "{fetches} stable_token fetches");
    assert_eq!(wx.force_refreshes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_replicas_fetch_one_token_between_them() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let wx = FakeWechat::start().await;
    wx.set_path_delay(STABLE, Duration::from_millis(100));
    let b = GatewayBuilder::new(&wx)
        .section(&redis_sections(&redis.url(), &encryption_key()))
        .section("[token_server]\nenabled = true");
    let (a, bb) = (b.clone().start().await, b.start().await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &bb };
        let url = gw.admin_url(&format!("/wechat/access_token?appid={}", wx.appid));
        set.spawn(async move { send(client().get(url)).await });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.json()["access_token"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen.len(),
        1,
        "replicas handed out different tokens: {seen:?}"
    );
    assert_eq!(
        wx.calls(STABLE),
        1,
        "2 replicas x 20 callers, more than one fetch"
    );
    // a failed_token report on A expires it for B too: one refresh in all
    let first = seen.into_iter().next().unwrap();
    wx.invalidate_token(&wx.appid);
    let body = json!({"appid": wx.appid, "failed_token": first});
    let r = send(
        client()
            .post(a.admin_url("/wechat/access_token"))
            .json(&body),
    )
    .await;
    let second = r.json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let r = send(
        client()
            .post(bb.admin_url("/wechat/access_token"))
            .json(&body),
    )
    .await;
    assert_eq!(
        r.json()["access_token"],
        second.as_str(),
        "B did not adopt A's refresh"
    );
    assert_eq!(wx.calls(STABLE), 2);
}

/// 16 clients x 50 proxied GETs through each store (printed); all succeed.
async fn proxied_rate(gw: &Gateway, token: &str) -> f64 {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (url, token) = (gw.url("/req/bench"), token.to_string());
        set.spawn(async move {
            let c = client();
            for _ in 0..50 {
                let r = send(c.get(&url).bearer_auth(&token)).await;
                assert_eq!(r.status, 200);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    800.0 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_requests_per_second_redis_vs_memory() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let base = GatewayBuilder::new(&wx)
        .rust_log(common::builder::QUIET_LOG)
        .route("/req/", &echo.url, "required");
    let mem = base.clone().start().await;
    let red = base
        .section(&redis_sections(&redis.url(), &encryption_key()))
        .start()
        .await;
    let (tm, tr) = (
        mem.login_as(&wx, "o-mem").await,
        red.login_as(&wx, "o-red").await,
    );
    let m = proxied_rate(&mem, &tm).await;
    let r = proxied_rate(&red, &tr).await;
    println!("proxied requests/s (debug build, 16 clients): memory {m:.0}, redis {r:.0}");
    assert_eq!(echo.count(), 1600);
    assert!(
        echo.records()
            .iter()
            .all(|rec| rec.header("x-wx-openid").is_some())
    );
}
