//! The access_token manager seen from outside: one stable_token fetch for many callers,
//! 40 concurrent phone calls on a token WeChat has just invalidated (at most 2 fetches, all
//! succeed), the 40001/40014/42001 rule (expire, refetch, retry exactly once), background
//! refresh of a short-lived token before any caller sees it expire, a failed refresh that
//! keeps serving the valid token, and phone calls/s against the fake.

mod common;

use std::time::{Duration, Instant};

use common::{FakeWechat, Gateway, GatewayBuilder, assert_error, metric_sum, wait_until_async};
use serde_json::json;

const PHONE: &str = "/wxa/business/getuserphonenumber";
const STABLE: &str = "/cgi-bin/stable_token";

/// Log in `n` distinct users; returns their tokens.
async fn sessions(wx: &FakeWechat, gw: &Gateway, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let code = format!("login-{i}-{}", common::random_hex(4));
        wx.add_code(&code, &format!("o-user-{i}"), None);
        out.push(gw.token(&code).await);
    }
    out
}

/// Run `/wx/phone` for each (token, code) at once; returns the statuses.
async fn concurrent_phones(gw: &Gateway, calls: Vec<(String, String)>) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for (t, c) in calls {
        let (url, t) = (gw.url("/wx/phone"), t.clone());
        set.spawn(async move {
            let req = common::client().post(url).bearer_auth(t);
            let r = common::send(req.json(&json!({ "code": c }))).await;
            (r.status, r.text())
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        let (status, text) = r.unwrap();
        assert_eq!(status, 200, "a phone call failed: {text}");
        out.push(status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_calls_on_an_invalidated_token_cause_at_most_two_fetches() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let tokens = sessions(&wx, &gw, 40).await;
    wx.add_phone_code("warm", "13800138999", "86");
    assert_eq!(gw.phone(&tokens[0], "warm").await.status, 200);
    let first = wx.current_token(&wx.appid).unwrap();

    wx.invalidate_token(&wx.appid);
    wx.set_path_delay(PHONE, Duration::from_millis(30));
    wx.set_path_delay(STABLE, Duration::from_millis(50));
    let fetches_before = wx.calls(STABLE);
    let calls: Vec<(String, String)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let code = format!("inv-{i}");
            wx.add_phone_code(&code, &format!("139{i:08}"), "86");
            (t.clone(), code)
        })
        .collect();
    let statuses = concurrent_phones(&gw, calls).await;
    let fetches = wx.calls(STABLE) - fetches_before;
    println!("40 concurrent phone calls on an invalidated token: {fetches} stable_token fetch(es)");
    assert_eq!(statuses.len(), 40);
    assert!(
        (1..=2).contains(&fetches),
        "{fetches} token fetches for 40 callers"
    );
    let second = wx.current_token(&wx.appid).unwrap();
    assert_ne!(first, second);
    let last_query = wx.queries().pop().unwrap();
    assert!(last_query.contains(&second), "not using the fresh token");
    let m = gw.metrics().await;
    let expired = metric_sum(&m, "wxgate_access_token_events_total", "event=\"expired\"");
    assert!((1.0..=2.0).contains(&expired), "expired events: {expired}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_token_is_replaced_and_the_call_retried_once() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let token = sessions(&wx, &gw, 1).await.remove(0);
    wx.add_phone_code("a", "13800138000", "86");
    wx.add_phone_code("b", "13800138000", "86");
    assert_eq!(gw.phone(&token, "a").await.status, 200);
    wx.invalidate_token(&wx.appid);
    let r = gw.phone(&token, "b").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wx.calls(PHONE), 3, "one failed call and one retry");
    assert_eq!(wx.calls(STABLE), 2, "one fresh token");
    assert_eq!(wx.rejected_token_calls(), 1);
}

/// 40001 / 40014 / 42001: exactly one retry; a second rejection is the caller's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_errcodes_are_retried_exactly_once() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let token = sessions(&wx, &gw, 1).await.remove(0);
    for (i, errcode) in [40001, 40014, 42001].into_iter().enumerate() {
        let (ok, bad) = (format!("ok-{i}"), format!("bad-{i}"));
        wx.add_phone_code(&ok, "13800138000", "86");
        wx.add_phone_code(&bad, "13800138000", "86");
        wx.queue_phone_errors(&[errcode]);
        let before = wx.calls(PHONE);
        let r = gw.phone(&token, &ok).await;
        assert_eq!(r.status, 200, "{errcode} once: {}", r.text());
        assert_eq!(wx.calls(PHONE) - before, 2, "{errcode}: one retry");

        wx.queue_phone_errors(&[errcode, errcode]);
        let before = wx.calls(PHONE);
        let err = assert_error(&gw.phone(&token, &bad).await, 502, "wechat_error");
        assert_eq!(err["wechat_errcode"], json!(errcode), "{err}");
        assert_eq!(
            wx.calls(PHONE) - before,
            2,
            "{errcode}: more than one retry"
        );
    }
}

/// A token living 3 s with a 1 s renewal window: the refresher asks early, takes an
/// unchanged answer as "not yet", and switches before expiry, so no call is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_replaces_a_short_lived_token_before_expiry() {
    let wx = FakeWechat::start().await;
    wx.set_token_lifetime(Duration::from_secs(3), Duration::from_secs(1));
    let gw = GatewayBuilder::new(&wx).start().await;
    let token = sessions(&wx, &gw, 1).await.remove(0);
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(6500) {
        let code = format!("bg-{n}");
        wx.add_phone_code(&code, "13800138000", "86");
        let r = gw.phone(&token, &code).await;
        assert_eq!(r.status, 200, "call {n}: {}", r.text());
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let issued = wx.issued_tokens().len();
    let fetches = wx.calls(STABLE);
    println!("{n} phone calls over 6.5 s; {issued} tokens issued, {fetches} stable_token calls");
    assert!(
        issued >= 3,
        "no background refresh: {issued} tokens in 6.5 s"
    );
    assert_eq!(
        wx.rejected_token_calls(),
        0,
        "a caller used an expired token"
    );
    assert_eq!(
        wx.calls(PHONE),
        n,
        "calls were retried, so a token had expired"
    );
    assert!(
        fetches <= 40,
        "the refresher hammers stable_token: {fetches}"
    );
    assert_eq!(wx.force_refreshes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_serving_the_valid_token() {
    let wx = FakeWechat::start().await;
    wx.set_token_lifetime(Duration::from_secs(5), Duration::from_secs(2));
    let gw = GatewayBuilder::new(&wx).start().await;
    let token = sessions(&wx, &gw, 1).await.remove(0);
    wx.add_phone_code("w", "13800138000", "86");
    assert_eq!(gw.phone(&token, "w").await.status, 200);
    let first = wx.current_token(&wx.appid).unwrap();
    wx.fail_stable_token(Some(-1));
    let failed = wait_until_async(Duration::from_secs(4), || async {
        let m = gw.metrics().await;
        metric_sum(
            &m,
            "wxgate_access_token_events_total",
            "event=\"fetch_failed\"",
        ) >= 1.0
    })
    .await;
    assert!(
        failed,
        "the refresher never tried (or never counted a failure)"
    );
    wx.add_phone_code("during", "13800138000", "86");
    let r = gw.phone(&token, "during").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(wx.queries().pop().unwrap().contains(&first));

    wx.fail_stable_token(None);
    let mut n = 0;
    let switched = wait_until_async(Duration::from_secs(6), || {
        n += 1;
        let code = format!("after-{n}");
        wx.add_phone_code(&code, "13800138000", "86");
        let (gw, wx, token, first) = (&gw, &wx, &token, &first);
        async move {
            assert_eq!(gw.phone(token, &code).await.status, 200);
            !wx.queries().pop().unwrap().contains(first.as_str())
        }
    })
    .await;
    assert!(
        switched,
        "never moved to a new token after WeChat recovered"
    );
    assert_eq!(wx.rejected_token_calls(), 0, "an expired token was used");
}

/// Phone calls/s through the gateway against the fake (printed); all succeed on one token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_calls_per_second_on_one_token() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .rust_log(common::builder::QUIET_LOG)
        .start()
        .await;
    let tokens = sessions(&wx, &gw, 20).await;
    let per_session = 10;
    let mut codes = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let mut own = Vec::new();
        for j in 0..per_session {
            let code = format!("rate-{i}-{j}");
            wx.add_phone_code(&code, &format!("137{i:04}{j:04}"), "86");
            own.push(code);
        }
        codes.push((t.clone(), own));
    }
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (t, own) in codes {
        let url = gw.url("/wx/phone");
        set.spawn(async move {
            for c in own {
                let req = common::client().post(&url).bearer_auth(&t);
                let r = common::send(req.json(&json!({ "code": c }))).await;
                assert_eq!(r.status, 200, "{}", r.text());
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let took = started.elapsed();
    let total = tokens.len() * per_session;
    let rate = total as f64 / took.as_secs_f64();
    println!(
        "phone calls: {total} in {took:?} = {rate:.0}/s (20 concurrent clients, memory store)"
    );
    assert_eq!(
        wx.calls(PHONE),
        total,
        "every call reached WeChat exactly once"
    );
    assert_eq!(wx.calls(STABLE), 1, "one token fetch for all calls");
}
