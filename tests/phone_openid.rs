//! Phone codes are bound to their user: the gateway sends the session's `openid` with the
//! `getPhoneNumber` code, so WeChat refuses a code that another user's button produced. A
//! code made for someone else binds nothing (no binding on the admin listener, no phone on
//! the session or upstream, a 400 `invalid_code` answer); the right user's code works.

mod common;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error};
use serde_json::{Value, json};

const PHONE: &str = "/wxa/business/getuserphonenumber";

/// The session and the upstream see neither phone nor account for `token`.
async fn assert_unbound(gw: &Gateway, echo: &Echo, appid: &str, openid: &str, token: &str) {
    assert_error(&gw.binding(appid, openid).await, 404, "not_found");
    let s = gw.session(token).await.json();
    assert_eq!(s["phone_number"], Value::Null, "{s}");
    assert_eq!(s["account_id"], Value::Null, "{s}");
    assert_eq!(gw.call("GET", "/req/who", Some(token)).await.status, 200);
    let rec = echo.last();
    assert!(rec.header("x-wx-phone").is_none(), "{rec:?}");
    assert!(rec.header("x-wx-account-id").is_none(), "{rec:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_code_of_another_user_binds_nothing() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .file(
            "accounts.toml",
            "[phone]\n\"13800138000\" = \"acct-alice\"\n",
        )
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let alice = gw.login_as(&wx, "o-alice").await;
    let mallory = gw.login_as(&wx, "o-mallory").await;
    wx.add_phone_code_for("alices-button", "o-alice", "13800138000", "86");

    // mallory replays alice's code: WeChat refuses it for mallory's openid
    let r = gw.phone(&mallory, "alices-button").await;
    let err = assert_error(&r, 400, "invalid_code");
    assert_eq!(err["wechat_errcode"], 40029, "{err}");
    assert_eq!(wx.phone_openid_refusals(), 1);
    let sent = wx.bodies(PHONE).pop().expect("a getuserphonenumber body");
    assert_eq!(
        sent,
        json!({"code": "alices-button", "openid": "o-mallory"})
    );
    assert_unbound(&gw, &echo, &wx.appid, "o-mallory", &mallory).await;
    // and mallory's next login does not carry it either
    let again = gw.login_as(&wx, "o-mallory").await;
    assert_unbound(&gw, &echo, &wx.appid, "o-mallory", &again).await;

    // alice's own code works, with her openid in the body
    let r = gw.phone(&alice, "alices-button").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], "acct-alice");
    let sent = wx.bodies(PHONE).pop().unwrap();
    assert_eq!(sent, json!({"code": "alices-button", "openid": "o-alice"}));
    let b = gw.binding(&wx.appid, "o-alice").await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(b.json()["phone_number"], "+8613800138000");
    assert_eq!(
        gw.session(&alice).await.json()["phone_number"],
        "+8613800138000"
    );
}

/// Each user's own code works, and each call names that user (not the last one to log in,
/// not a fixed one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_phone_call_carries_the_sessions_openid() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    for user in ["o-one", "o-two", "o-three"] {
        let token = gw.login_as(&wx, user).await;
        let code = format!("btn-{user}");
        wx.add_phone_code_for(&code, user, "13900139000", "86");
        let r = gw.phone(&token, &code).await;
        assert_eq!(r.status, 200, "{user}: {}", r.text());
        assert_eq!(wx.bodies(PHONE).pop().unwrap()["openid"], user);
    }
    assert_eq!(wx.phone_openid_refusals(), 0);
}
