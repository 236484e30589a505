//! `POST /wx/login`: the success shape, account mapping from the accounts file, every
//! WeChat errcode mapping of the contract (number or numeric string), request validation,
//! the `[wechat] timeout`, an unreachable WeChat, and several `[[apps]]`.

mod common;

use std::time::{Duration, Instant};

use common::echo::refused;
use common::{FakeWechat, GatewayBuilder, assert_error, client, is_token, send};
use serde_json::{Value, json};

const JS: &str = "/sns/jscode2session";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_success_has_the_contract_shape() {
    let wx = FakeWechat::start().await;
    wx.add_code("c1", "o-alice", Some("u-alice"));
    let gw = GatewayBuilder::new(&wx)
        .section("[session]\nttl = \"2h\"")
        .start()
        .await;
    let r = gw.login("c1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .contains("json")
    );
    let b = r.json();
    assert!(
        is_token(b["token"].as_str().unwrap_or("")),
        "token form: {b}"
    );
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], json!(7200));
    assert_eq!(b["openid"], "o-alice");
    assert_eq!(b["unionid"], "u-alice");
    assert_eq!(b["account_id"], Value::Null);
    assert!(
        b.as_object().unwrap().contains_key("account_id"),
        "account_id missing: {b}"
    );
    let q = wx.queries().pop().expect("WeChat was called");
    for part in [
        "js_code=c1",
        "grant_type=authorization_code",
        &format!("appid={}", wx.appid),
    ] {
        assert!(q.contains(part), "query {q:?} lacks {part}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_without_unionid_gives_null_and_sessions_are_distinct() {
    let wx = FakeWechat::start().await;
    wx.add_code("c1", "o-bob", None);
    wx.add_code("c2", "o-bob", None);
    let gw = GatewayBuilder::new(&wx).start().await;
    let r = gw.login("c1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert!(
        b.as_object().unwrap().contains_key("unionid"),
        "unionid key missing: {b}"
    );
    assert_eq!(b["unionid"], Value::Null);
    assert_eq!(b["expires_in"], json!(7 * 86400), "default ttl is 7d");
    let t2 = gw.token("c2").await;
    assert_ne!(b["token"].as_str().unwrap(), t2, "two logins got one token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_id_comes_from_the_accounts_file() {
    let wx = FakeWechat::start().await;
    wx.add_code("by-openid", "o-mapped", Some("u-mapped"));
    wx.add_code("by-unionid", "o-other", Some("u-mapped"));
    wx.add_code("unmapped", "o-nobody", Some("u-nobody"));
    let accounts = "[openid]\n\"o-mapped\" = \"10001\"\n[unionid]\n\"u-mapped\" = \"10002\"\n\
                    [phone]\n\"13800138000\" = \"10003\"\n";
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", accounts)
        .section("[accounts]\nfile = \"accounts.toml\"")
        .start()
        .await;
    let ids: Vec<Value> = account_ids(&gw, &["by-openid", "by-unionid", "unmapped"]).await;
    assert_eq!(ids[0], "10001", "openid entry wins over unionid");
    assert_eq!(ids[1], "10002", "unionid entry");
    assert_eq!(ids[2], Value::Null, "unmapped identity");
}

async fn account_ids(gw: &common::Gateway, codes: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in codes {
        let r = gw.login(c).await;
        assert_eq!(r.status, 200, "{c}: {}", r.text());
        out.push(r.json()["account_id"].clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_request_and_never_reach_wechat() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let post = |body: &'static str| {
        send(
            client()
                .post(gw.url("/wx/login"))
                .header("content-type", "application/json")
                .body(body),
        )
    };
    for body in [
        "{\"code\":",
        "not json",
        "",
        "[]",
        "{}",
        "{\"code\":\"\"}",
        "{\"code\":42}",
    ] {
        assert_error(&post(body).await, 400, "invalid_request");
    }
    let r = gw
        .login_body(json!({"code": "x", "appid": "wxffffffffffffffff"}))
        .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(wx.calls(JS), 0, "WeChat was asked about an invalid request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_is_json_whatever_the_content_type() {
    let wx = FakeWechat::start().await;
    wx.add_code("ct", "o-ct", None);
    let gw = GatewayBuilder::new(&wx).start().await;
    let req = client()
        .post(gw.url("/wx/login"))
        .header("content-type", "text/plain")
        .body("{\"code\":\"ct\"}");
    let r = send(req).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Each WeChat errcode maps to the contract's status and code, with `wechat_errcode`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_errcodes_map_to_contract_errors() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let table: [(i64, u16, &str); 7] = [
        (40029, 400, "invalid_code"),
        (40163, 400, "code_used"),
        (40226, 403, "user_blocked"),
        (45011, 429, "rate_limited"),
        (-1, 503, "wechat_unavailable"),
        (40125, 502, "wechat_error"),
        (45009, 502, "wechat_error"),
    ];
    for (errcode, status, code) in table {
        for as_string in [false, true] {
            let c = format!("err-{errcode}-{as_string}");
            if as_string {
                wx.add_error_code_as_string(&c, errcode);
            } else {
                wx.add_error_code(&c, errcode);
            }
            let before = wx.calls(JS);
            let err = assert_error(&gw.login(&c).await, status, code);
            assert_eq!(err["wechat_errcode"], json!(errcode), "{c}: {err}");
            assert_eq!(
                wx.calls(JS),
                before + 1,
                "{c}: a single-use code was retried"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_works_once_and_unknown_codes_are_invalid() {
    let wx = FakeWechat::start().await;
    wx.add_code("once", "o-once", None);
    let gw = GatewayBuilder::new(&wx).start().await;
    assert_eq!(gw.login("once").await.status, 200);
    let err = assert_error(&gw.login("once").await, 400, "code_used");
    assert_eq!(err["wechat_errcode"], json!(40163));
    let err = assert_error(&gw.login("never-issued").await, 400, "invalid_code");
    assert_eq!(err["wechat_errcode"], json!(40029));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_app_secret_is_a_wechat_error() {
    let wx = FakeWechat::start().await;
    wx.add_code("c", "o", None);
    let gw = GatewayBuilder::new(&wx)
        .no_apps()
        .app(&wx.appid, "APPSECRET-wrong")
        .start()
        .await;
    let err = assert_error(&gw.login("c").await, 502, "wechat_error");
    assert_eq!(err["wechat_errcode"], json!(40125));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_wechat_times_out_as_unavailable() {
    let wx = FakeWechat::start().await;
    wx.add_code("slow", "o-slow", None);
    wx.set_delay(Duration::from_millis(2500));
    let gw = GatewayBuilder::new(&wx)
        .wechat("timeout", "\"300ms\"")
        .start()
        .await;
    let t0 = Instant::now();
    let r = gw.login("slow").await;
    let took = t0.elapsed();
    assert_error(&r, 503, "wechat_unavailable");
    assert!(
        took < Duration::from_millis(2000),
        "timeout not applied: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_wechat_is_unavailable() {
    let wx = FakeWechat::start().await;
    let down = refused();
    let gw = GatewayBuilder::new(&wx).api_base(&down.url).start().await;
    assert_error(&gw.login("any").await, 503, "wechat_unavailable");
}

/// With two apps the request's appid picks the secret; without appid it is ambiguous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_are_chosen_by_appid() {
    let wx = FakeWechat::start().await;
    let (appid_b, secret_b) = wx.add_app();
    wx.add_code("a-code", "o-in-a", None);
    wx.add_code_for(&appid_b, "b-code", "o-in-b", None);
    let gw = GatewayBuilder::new(&wx)
        .app(&appid_b, &secret_b)
        .start()
        .await;
    let r = gw
        .login_body(json!({"code": "b-code", "appid": appid_b}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["openid"], "o-in-b");
    let q = wx.queries().pop().unwrap();
    assert!(
        q.contains(&format!("secret={secret_b}")),
        "app B's secret not used: {q}"
    );
    let r = gw
        .login_body(json!({"code": "a-code", "appid": wx.appid}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["openid"], "o-in-a");
    let calls = wx.calls(JS);
    assert_error(&gw.login("a-code").await, 400, "invalid_request");
    assert_eq!(wx.calls(JS), calls, "ambiguous appid still asked WeChat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appid_may_be_given_with_one_app() {
    let wx = FakeWechat::start().await;
    wx.add_code("c", "o-one", None);
    let gw = GatewayBuilder::new(&wx).start().await;
    let r = gw.login_body(json!({"code": "c", "appid": wx.appid})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
