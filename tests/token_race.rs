//! A call whose access_token WeChat refused (40001) is retried with a token that is not the
//! refused one — however the replicas interleave. Two replicas on one Redis, five rounds of
//! 40 phone calls right after WeChat invalidated the token they both hold; in each round
//! Redis holds writes back for 300 ms with its script cache flushed (as after a restart),
//! so the compare-then-expire of the first callers is still on its way while later callers
//! read the shared token. And one gateway whose stable_token still hands out the token it
//! just refused (a lagging invalidation): one extra fetch, and the retry has a new token.

mod common;

use std::time::Duration;

use common::redis::{RedisServer, encryption_key, redis_sections};
use common::{FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};
use serde_json::json;

const STABLE: &str = "/cgi-bin/stable_token";
const PHONE: &str = "/wxa/business/getuserphonenumber";

type Call = (String, String, String);

fn spawn_calls(set: &mut tokio::task::JoinSet<(String, common::Resp)>, calls: &[Call]) {
    for (url, token, code) in calls.iter().cloned() {
        set.spawn(async move {
            let req = client().post(url).bearer_auth(token);
            (code.clone(), send(req.json(&json!({ "code": code }))).await)
        });
    }
}

/// One round: 40 calls (20 per replica) on the token both replicas hold, just invalidated.
/// The first 8 go out at once; the other 32 once WeChat has refused all 8, so those 8 are
/// expiring the token while the 32 look for one.
async fn round(wx: &FakeWechat, redis: &RedisServer, replicas: [&Gateway; 2], n: usize) {
    let mut calls = Vec::new();
    for i in 0..40 {
        let gw = replicas[i % 2];
        let token = gw.login_as(wx, &format!("o-{n}-{i}")).await;
        let code = format!("r{n}-p{i}");
        wx.add_phone_code(&code, &format!("139{i:08}"), "86");
        calls.push((gw.url("/wx/phone"), token, code));
    }
    let (refused, fetches) = (wx.rejected_token_calls(), wx.calls(STABLE));
    wx.invalidate_token(&wx.appid);
    redis.cmd(&["SCRIPT", "FLUSH"]);
    redis.cmd(&["CLIENT", "PAUSE", "300", "WRITE"]);
    let mut set = tokio::task::JoinSet::new();
    spawn_calls(&mut set, &calls[..8]);
    let first_refused = common::wait_until(Duration::from_secs(3), || {
        wx.rejected_token_calls() >= refused + 8
    })
    .await;
    assert!(first_refused, "round {n}: WeChat never refused the first 8");
    spawn_calls(&mut set, &calls[8..]);
    let mut failed = Vec::new();
    while let Some(r) = set.join_next().await {
        let (code, r) = r.unwrap();
        if r.status != 200 {
            failed.push(format!("{code}: {} {}", r.status, r.text()));
        }
    }
    let fetches = wx.calls(STABLE) - fetches;
    println!(
        "round {n}: {} of 40 failed, {fetches} stable_token fetch(es)",
        failed.len()
    );
    assert!(failed.is_empty(), "round {n}: {failed:#?}");
    assert!((1..=2).contains(&fetches), "round {n}: {fetches} fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_retry_with_the_refused_token() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let wx = FakeWechat::start().await;
    wx.set_path_delay(PHONE, Duration::from_millis(30));
    wx.set_path_delay(STABLE, Duration::from_millis(50));
    let b = GatewayBuilder::new(&wx).section(&redis_sections(&redis.url(), &encryption_key()));
    let (a, bb) = (b.clone().start().await, b.start().await);
    for (i, gw) in [&a, &bb].into_iter().enumerate() {
        let token = gw.login_as(&wx, &format!("o-warm-{i}")).await;
        wx.add_phone_code(&format!("w{i}"), "13800138000", "86");
        assert_eq!(gw.phone(&token, &format!("w{i}")).await.status, 200);
    }
    assert_eq!(wx.calls(STABLE), 1, "the replicas fetched their own tokens");
    for n in 0..5 {
        round(&wx, &redis, [&a, &bb], n).await;
    }
    assert_eq!(wx.force_refreshes(), 0);
}

/// The access_token a getuserphonenumber call presented.
fn presented(query: &str) -> String {
    common::fake_wechat::parse_query(query)
        .get("access_token")
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stable_token_still_hands_out_costs_one_extra_fetch() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let token = gw.login_as(&wx, "o-lag").await;
    wx.add_phone_code("warm", "13800138000", "86");
    assert_eq!(gw.phone(&token, "warm").await.status, 200);
    let first = wx.current_token(&wx.appid).unwrap();

    // stable_token answers the refused token once more: one extra fetch, then a new one
    wx.invalidate_token_lagging(&wx.appid, 1);
    let (fetches, phones) = (wx.calls(STABLE), wx.calls(PHONE));
    wx.add_phone_code("lag1", "13800138001", "86");
    let r = gw.phone(&token, "lag1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wx.calls(STABLE) - fetches, 2, "one extra fetch");
    assert_eq!(wx.calls(PHONE) - phones, 2);
    let retry = presented(&wx.queries().pop().unwrap());
    assert_ne!(retry, first, "the retry presented the refused token");
    let second = wx.current_token(&wx.appid).unwrap();
    assert_eq!(retry, second);

    // it insists (two answers in a row): WeChat's current token after all, so the retry
    // runs with it; no third fetch, and the next call, once stable_token has caught up,
    // gets a new token
    wx.invalidate_token_lagging(&wx.appid, 2);
    let (fetches, phones) = (wx.calls(STABLE), wx.calls(PHONE));
    wx.add_phone_code("lag2", "13800138002", "86");
    assert_error(&gw.phone(&token, "lag2").await, 502, "wechat_error");
    assert_eq!(wx.calls(STABLE) - fetches, 2, "more than one extra fetch");
    assert_eq!(wx.calls(PHONE) - phones, 2, "more than one retry");
    let r = gw.phone(&token, "lag2").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(presented(&wx.queries().pop().unwrap()), second);
    assert_eq!(wx.force_refreshes(), 0);
}
