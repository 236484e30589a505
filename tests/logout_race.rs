//! A logout stays a logout: a `/wx/phone` that is still waiting for WeChat when the token
//! is revoked must not write its copy of the session back. Once the slow phone call
//! returns, it answers 401, and the token is 401 on `/wx/session` and on a proxied route —
//! with the memory store, with Redis on the same replica, and with Redis when the logout
//! happened on another replica. The binding the phone call recorded stays (it belongs to
//! the openid, not to the token).

mod common;

use std::time::Duration;

use common::redis::{RedisServer, encryption_key, redis_sections};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};

const PHONE: &str = "/wxa/business/getuserphonenumber";
const DELAY: Duration = Duration::from_millis(1500);

fn builder(wx: &FakeWechat, echo: &Echo) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .file(
            "accounts.toml",
            "[phone]\n\"13800138000\" = \"acct-race\"\n",
        )
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
}

/// Start a slow `/wx/phone` on `phone_gw`, log out on `logout_gw` while WeChat still holds
/// the phone call, then check that the token is dead everywhere and stays dead.
async fn logout_during_phone(wx: &FakeWechat, phone_gw: &Gateway, logout_gw: &Gateway) {
    let openid = format!("o-race-{}", common::random_hex(4));
    let token = phone_gw.login_as(wx, &openid).await;
    // both instances have used (and may cache) the session before the race
    assert_eq!(
        phone_gw.call("GET", "/req/a", Some(&token)).await.status,
        200
    );
    assert_eq!(logout_gw.session(&token).await.status, 200);
    let code = format!("p-{}", common::random_hex(4));
    wx.add_phone_code(&code, "13800138000", "86");
    wx.set_path_delay(PHONE, DELAY);
    let before = wx.calls(PHONE);

    let phone = {
        let (url, token, code) = (phone_gw.url("/wx/phone"), token.clone(), code.clone());
        tokio::spawn(async move {
            let req = client()
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "code": code }));
            send(req).await
        })
    };
    let in_flight = common::wait_until(Duration::from_secs(5), || wx.calls(PHONE) > before).await;
    assert!(in_flight, "the phone call never reached WeChat");
    let r = logout_gw.call("POST", "/wx/logout", Some(&token)).await;
    assert_eq!(r.status, 204, "logout: {}", r.text());

    let answer = phone.await.unwrap();
    assert_error(&answer, 401, "unauthenticated");
    wx.set_path_delay(PHONE, Duration::ZERO);

    // dead at once on the phone's instance, and still dead after every cache has expired
    for round in 0..2 {
        for gw in [phone_gw, logout_gw] {
            assert_error(&gw.session(&token).await, 401, "unauthenticated");
            let r = gw.call("GET", "/req/b", Some(&token)).await;
            assert_error(&r, 401, "unauthenticated");
        }
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    // the binding belongs to the openid: a new login carries the phone
    let again = phone_gw.login_as(wx, &openid).await;
    let s = phone_gw.session(&again).await.json();
    assert_eq!(s["phone_number"], "+8613800138000", "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_logout_during_a_slow_phone_call_stays_a_logout() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = builder(&wx, &echo).start().await;
    logout_during_phone(&wx, &gw, &gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_logout_during_a_slow_phone_call_stays_a_logout() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = builder(&wx, &echo).section(&redis_sections(&redis.url(), &encryption_key()));
    let (a, other) = (b.clone().start().await, b.start().await);
    // the logout on the same replica as the phone call, then on another replica
    logout_during_phone(&wx, &a, &a).await;
    logout_during_phone(&wx, &a, &other).await;
    let keys = redis.cmd(&["KEYS", "*session:*"]).text();
    let live: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    // only the two sessions of the final logins are left
    assert_eq!(live.len(), 2, "session keys left in Redis: {live:?}");
}
