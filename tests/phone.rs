//! `POST /wx/phone`: the full flow (WeChat call, E.164, account from `[phone]`, headers on
//! the next proxied request, the binding carried into a new login), foreign numbers and a
//! numeric `countryCode`, the `watermark.appid` check, errcode mapping without retries,
//! 409 `account_conflict` that changes nothing, authentication and the shared rate limit.

mod common;

use common::fake_tokens::phone_info;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, metric_sum, send};
use serde_json::{Value, json};

const PHONE: &str = "/wxa/business/getuserphonenumber";
const STABLE: &str = "/cgi-bin/stable_token";

const ACCOUNTS: &str = "[openid]\n\"o-has-account\" = \"acct-openid\"\n\
    [phone]\n\"13800138000\" = \"acct-phone\"\n\"+14155550123\" = \"acct-us\"\n";

async fn setup(wx: &FakeWechat, echo: &Echo) -> Gateway {
    GatewayBuilder::new(wx)
        .file("accounts.toml", ACCOUNTS)
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .start()
        .await
}

/// Log `openid` in with a fresh code; returns the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_flow_binds_the_account_and_reaches_the_upstream() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let token = gw.login_as(&wx, "o-phone").await;
    assert_eq!(
        gw.call("GET", "/req/before", Some(&token)).await.status,
        200
    );
    assert!(echo.last().header("x-wx-phone").is_none());

    wx.add_phone_code("p1", "13800138000", "86");
    let r = gw.phone(&token, "p1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["phone_number"], "+8613800138000");
    assert_eq!(b["pure_phone_number"], "13800138000");
    assert_eq!(b["country_code"], "86");
    assert_eq!(b["account_id"], "acct-phone");

    // WeChat was asked once, with the current stable_token and the code in the body
    assert_eq!(wx.calls(PHONE), 1);
    assert_eq!(wx.calls(STABLE), 1);
    assert_eq!(
        wx.force_refreshes(),
        0,
        "stable_token must run in normal mode"
    );
    let at = wx.current_token(&wx.appid).unwrap();
    let q = wx.queries().pop().unwrap();
    assert!(q.contains(&format!("access_token={at}")), "query {q:?}");

    assert_eq!(gw.call("GET", "/req/after", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header_all("x-wx-phone"), vec!["+8613800138000"]);
    assert_eq!(rec.header_all("x-wx-account-id"), vec!["acct-phone"]);
    let s = gw.session(&token).await.json();
    assert_eq!(s["phone_number"], "+8613800138000");
    assert_eq!(s["account_id"], "acct-phone");

    // a new login of that openid carries phone and account without asking WeChat again
    wx.add_code("again", "o-phone", None);
    let r = gw.login("again").await;
    assert_eq!(r.json()["account_id"], "acct-phone", "{}", r.text());
    let t2 = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(gw.call("GET", "/req/again", Some(&t2)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-phone"), Some("+8613800138000"));
    assert_eq!(rec.header("x-wx-account-id"), Some("acct-phone"));
    assert_eq!(wx.calls(PHONE), 1, "the binding asked WeChat again");

    let m = gw.metrics().await;
    assert_eq!(metric_sum(&m, "wxgate_phone_total", "outcome=\"ok\""), 1.0);
    let fetched = metric_sum(&m, "wxgate_access_token_events_total", "event=\"fetched\"");
    assert_eq!(fetched, 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_numbers_and_numeric_country_codes_become_e164() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let us = gw.login_as(&wx, "o-us").await;
    wx.add_phone_code("us", "4155550123", "1");
    let r = gw.phone(&us, "us").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["phone_number"], "+14155550123");
    assert_eq!(b["pure_phone_number"], "4155550123");
    assert_eq!(b["country_code"], "1");
    assert_eq!(b["account_id"], "acct-us", "E.164 key of [phone]");
    assert_eq!(gw.call("GET", "/req/us", Some(&us)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-phone"), Some("+14155550123"));

    // countryCode as a JSON number; an unmapped phone gives no account
    let cn = gw.login_as(&wx, "o-numeric").await;
    let info = phone_info("13900139000", json!(86), &wx.appid);
    wx.add_phone_info("num", &wx.appid.clone(), info);
    let r = gw.phone(&cn, "num").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["phone_number"], "+8613900139000");
    assert_eq!(b["country_code"], "86", "country_code is a string: {b}");
    assert_eq!(b["account_id"], Value::Null);
    assert_eq!(gw.call("GET", "/req/num", Some(&cn)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-phone"), Some("+8613900139000"));
    assert!(rec.header("x-wx-account-id").is_none(), "{rec:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_phone_keeps_the_sessions_own_account() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let token = gw.login_as(&wx, "o-has-account").await;
    wx.add_phone_code("free", "13700137000", "86");
    let r = gw.phone(&token, "free").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], "acct-openid");
    assert_eq!(gw.call("GET", "/req/x", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-account-id"), Some("acct-openid"));
    assert_eq!(rec.header("x-wx-phone"), Some("+8613700137000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_of_another_app_is_a_wechat_error() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let token = gw.login_as(&wx, "o-wm").await;
    let info = phone_info("13800138000", json!("86"), "wx00000000000000ff");
    wx.add_phone_info("wm", &wx.appid.clone(), info);
    assert_error(&gw.phone(&token, "wm").await, 502, "wechat_error");
    let s = gw.session(&token).await.json();
    assert_eq!(s["phone_number"], Value::Null, "unverified phone kept: {s}");
    assert_eq!(s["account_id"], Value::Null);
    let b = send(client().get(gw.admin_url(&format!("/bindings/{}/o-wm", wx.appid)))).await;
    assert_error(&b, 404, "not_found");
    assert_eq!(
        wx.calls(PHONE),
        1,
        "a failed check must not repeat the call"
    );
}

/// Errcodes map as for login, carry `wechat_errcode`, and are never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_errcodes_map_to_contract_errors_without_retry() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let token = gw.login_as(&wx, "o-err").await;
    let table: [(i64, u16, &str); 6] = [
        (40029, 400, "invalid_code"),
        (40163, 400, "code_used"),
        (-1, 503, "wechat_unavailable"),
        (45009, 502, "wechat_error"),
        (40013, 502, "wechat_error"),
        (47001, 502, "wechat_error"),
    ];
    for (errcode, status, code) in table {
        let c = format!("perr{errcode}");
        wx.add_phone_error(&c, errcode);
        let before = wx.calls(PHONE);
        let err = assert_error(&gw.phone(&token, &c).await, status, code);
        assert_eq!(err["wechat_errcode"], json!(errcode), "{c}: {err}");
        assert_eq!(
            wx.calls(PHONE),
            before + 1,
            "{c}: retried a single-use code"
        );
    }
    wx.add_phone_code("once", "13800138000", "86");
    assert_eq!(gw.phone(&token, "once").await.status, 200);
    let err = assert_error(&gw.phone(&token, "once").await, 400, "code_used");
    assert_eq!(err["wechat_errcode"], json!(40163));
    let err = assert_error(&gw.phone(&token, "never-issued").await, 400, "invalid_code");
    assert_eq!(err["wechat_errcode"], json!(40029));
    assert_eq!(wx.calls(STABLE), 1, "one token for all of it");
    let m = gw.metrics().await;
    assert!(metric_sum(&m, "wxgate_phone_total", "outcome=\"invalid_code\"") >= 2.0);
    assert!(metric_sum(&m, "wxgate_phone_total", "outcome=\"wechat_error\"") >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_is_409_and_changes_nothing() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    let token = gw.login_as(&wx, "o-has-account").await;
    wx.add_phone_code("other", "13800138000", "86");
    assert_error(&gw.phone(&token, "other").await, 409, "account_conflict");
    let s = gw.session(&token).await.json();
    assert_eq!(s["account_id"], "acct-openid", "{s}");
    assert_eq!(s["phone_number"], Value::Null, "{s}");
    assert_eq!(gw.call("GET", "/req/c", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-account-id"), Some("acct-openid"));
    assert!(rec.header("x-wx-phone").is_none(), "{rec:?}");
    let url = gw.admin_url(&format!("/bindings/{}/o-has-account", wx.appid));
    assert_error(&send(client().get(url)).await, 404, "not_found");
    // and a later login of that openid still resolves to its own account, without a phone
    let t2 = gw.login_as(&wx, "o-has-account").await;
    let s = gw.session(&t2).await.json();
    assert_eq!(s["account_id"], "acct-openid");
    assert_eq!(s["phone_number"], Value::Null);
    let m = gw.metrics().await;
    let n = metric_sum(&m, "wxgate_phone_total", "outcome=\"account_conflict\"");
    assert_eq!(n, 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_needs_a_session_and_a_code() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = setup(&wx, &echo).await;
    wx.add_phone_code("p", "13800138000", "86");
    let anon = send(
        client()
            .post(gw.url("/wx/phone"))
            .json(&json!({"code": "p"})),
    )
    .await;
    assert_error(&anon, 401, "unauthenticated");
    assert_error(
        &gw.phone("wxg_not-a-real-token", "p").await,
        401,
        "unauthenticated",
    );
    let token = gw.login_as(&wx, "o-code").await;
    for body in ["{}", "{\"code\":\"\"}", "not json"] {
        let req = client()
            .post(gw.url("/wx/phone"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body);
        assert_error(&send(req).await, 400, "invalid_request");
    }
    let r = gw.call("GET", "/wx/phone", Some(&token)).await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(wx.calls(PHONE), 0, "WeChat asked about an invalid request");
    assert_eq!(gw.phone(&token, "p").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_shares_the_login_rate_limit_bucket() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .rate_limit("login_per_minute = 1\nlogin_burst = 2")
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let token = gw.login_as(&wx, "o-rl").await;
    wx.add_phone_code("rl1", "13800138000", "86");
    wx.add_phone_code("rl2", "13800138001", "86");
    assert_eq!(gw.phone(&token, "rl1").await.status, 200);
    let r = gw.phone(&token, "rl2").await;
    assert_error(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some(), "429 without Retry-After");
    assert_eq!(wx.calls(PHONE), 1, "a limited request reached WeChat");
}
