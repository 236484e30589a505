//! Durable bindings with the memory store: they live under `[session] data_dir`, survive a
//! graceful restart and a `kill -9` right after `/wx/phone` answered 200, carry phone and
//! account into the next login without a WeChat phone call; the admin listener shows
//! (`GET`, with the account the current accounts file gives the phone) and removes
//! (`DELETE`) them, and a removal reaches live sessions.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};
use serde_json::Value;

const PHONE: &str = "/wxa/business/getuserphonenumber";
const ACCOUNTS: &str =
    "[phone]\n\"13800138000\" = \"acct-bound\"\n\"+8613900139000\" = \"acct-two\"\n";

fn builder(wx: &FakeWechat, echo: &Echo, data: &Path) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .file("accounts.toml", ACCOUNTS)
        .section("[accounts]\nfile = \"accounts.toml\"")
        .section(&format!("[session]\ndata_dir = \"{}\"", data.display()))
        .route("/req/", &echo.url, "required")
}

/// A new login of `openid` resolves to `account` and `phone` (session and upstream).
async fn assert_login_carries(
    wx: &FakeWechat,
    gw: &Gateway,
    echo: &Echo,
    openid: &str,
    account: &str,
    phone: &str,
) {
    let code = format!("again-{}", common::random_hex(6));
    wx.add_code(&code, openid, None);
    let r = gw.login(&code).await;
    assert_eq!(r.json()["account_id"], account, "{openid}: {}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(gw.session(&token).await.json()["phone_number"], phone);
    assert_eq!(gw.call("GET", "/req/who", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-account-id"), Some(account), "{openid}");
    assert_eq!(rec.header("x-wx-phone"), Some(phone), "{openid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_survive_a_graceful_restart() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let data = tempfile::tempdir().unwrap();
    let b = builder(&wx, &echo, data.path());
    let mut gw = b.clone().start().await;
    let token = gw.login_as(&wx, "o-restart").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&token, "p").await.status, 200);
    gw.signal("TERM");
    assert!(
        gw.wait_exit(Duration::from_secs(10)).await.is_some(),
        "no exit on TERM"
    );
    assert!(
        data.path().join("bindings.redb").exists(),
        "no bindings.redb under data_dir"
    );

    let gw = b.start().await;
    assert_login_carries(&wx, &gw, &echo, "o-restart", "acct-bound", "+8613800138000").await;
    assert_eq!(wx.calls(PHONE), 1, "the phone was asked for again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_survive_kill_9_right_after_the_answer() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let data = tempfile::tempdir().unwrap();
    let b = builder(&wx, &echo, data.path());
    let mut gw = b.clone().start().await;
    let mut users = Vec::new();
    for i in 0..5 {
        let openid = format!("o-crash-{i}");
        let token = gw.login_as(&wx, &openid).await;
        wx.add_phone_code(&format!("k{i}"), "13900139000", "86");
        users.push((openid, token));
    }
    for (i, (_, token)) in users.iter().enumerate() {
        let r = gw.phone(token, &format!("k{i}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // SIGKILL the moment the last answer arrived: no chance to flush anything
    gw.signal("KILL");
    assert!(gw.wait_exit(Duration::from_secs(5)).await.is_some());

    let gw = b.start().await;
    for (openid, _) in &users {
        let r = gw.binding(&wx.appid, openid).await;
        assert_eq!(r.status, 200, "{openid} lost: {}", r.text());
        assert_eq!(r.json()["phone_number"], "+8613900139000");
        assert_eq!(r.json()["account_id"], "acct-two");
    }
    assert_login_carries(&wx, &gw, &echo, "o-crash-4", "acct-two", "+8613900139000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shows_and_deletes_bindings() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let data = tempfile::tempdir().unwrap();
    let gw = builder(&wx, &echo, data.path()).start().await;
    assert_error(&gw.binding(&wx.appid, "o-admin").await, 404, "not_found");
    let first = gw.login_as(&wx, "o-admin").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&first, "p").await.status, 200);

    let r = gw.binding(&wx.appid, "o-admin").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .contains("json")
    );
    let b = r.json();
    assert_eq!(b["appid"], wx.appid.as_str());
    assert_eq!(b["openid"], "o-admin");
    assert_eq!(b["phone_number"], "+8613800138000");
    assert_eq!(b["account_id"], "acct-bound");
    let at = common::parse_rfc3339_utc(b["bound_at"].as_str().unwrap_or("")).expect("bound_at");
    assert!((at - common::now_secs()).abs() <= 60, "bound_at {b}");

    let url = gw.admin_url(&format!("/bindings/{}/o-admin", wx.appid));
    let r = send(client().delete(&url)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_error(&gw.binding(&wx.appid, "o-admin").await, 404, "not_found");
    assert_error(&send(client().delete(&url)).await, 404, "not_found");
    let r = send(client().get(gw.admin_url("/bindings/only-one-segment"))).await;
    assert_error(&r, 404, "not_found");
    // the admin paths are not on the public listener
    let r = gw
        .call("GET", &format!("/bindings/{}/o-admin", wx.appid), None)
        .await;
    assert_error(&r, 404, "not_found");
}

/// The binding keeps the phone, not the account: once `[phone]` no longer maps the phone,
/// live sessions lose the account at their next request (the phone stays), the admin view
/// shows no account, and a DELETE then removes the binding itself.
/// (Before bindings stopped copying the account, this test expected the account kept.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_phone_entry_leaves_live_sessions_at_their_next_request() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let data = tempfile::tempdir().unwrap();
    let gw = builder(&wx, &echo, data.path()).start().await;
    let token = gw.login_as(&wx, "o-del").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&token, "p").await.status, 200);
    // drop the [phone] entry; wait until the reload is visible through a probe identity
    let path = gw.dir().join("accounts.toml");
    std::fs::write(&path, "[openid]\n\"o-probe\" = \"probe\"\n").unwrap();
    gw.signal("HUP");
    let reloaded = common::wait_until_async(Duration::from_secs(5), || async {
        let code = format!("probe-{}", common::random_hex(4));
        wx.add_code(&code, "o-probe", None);
        gw.login(&code).await.json()["account_id"] == "probe"
    })
    .await;
    assert!(reloaded, "the accounts file was not reloaded");
    assert_eq!(gw.call("GET", "/req/a", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert!(rec.header("x-wx-account-id").is_none(), "{rec:?}");
    assert_eq!(rec.header("x-wx-phone"), Some("+8613800138000"));
    let b = gw.binding(&wx.appid, "o-del").await.json();
    assert_eq!(b["phone_number"], "+8613800138000", "{b}");
    assert_eq!(b["account_id"], Value::Null, "{b}");

    let url = gw.admin_url(&format!("/bindings/{}/o-del", wx.appid));
    assert_eq!(send(client().delete(&url)).await.status, 204);
    assert_error(&gw.binding(&wx.appid, "o-del").await, 404, "not_found");
    assert_eq!(gw.call("GET", "/req/b", Some(&token)).await.status, 200);
    assert!(echo.last().header("x-wx-account-id").is_none());
    assert_eq!(gw.session(&token).await.json()["account_id"], Value::Null);
}

/// A session that got phone and account from the binding at login (it never verified a
/// phone itself) loses both when a support desk deletes the binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_binding_unbinds_sessions_that_inherited_it_at_login() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let data = tempfile::tempdir().unwrap();
    let gw = builder(&wx, &echo, data.path()).start().await;
    let first = gw.login_as(&wx, "o-inherit").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&first, "p").await.status, 200);
    let second = gw.login_as(&wx, "o-inherit").await;
    assert_eq!(gw.call("GET", "/req/x", Some(&second)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-account-id"), Some("acct-bound"));

    let url = gw.admin_url(&format!("/bindings/{}/o-inherit", wx.appid));
    assert_eq!(send(client().delete(&url)).await.status, 204);
    assert_eq!(gw.call("GET", "/req/y", Some(&second)).await.status, 200);
    let rec = echo.last();
    assert!(
        rec.header("x-wx-account-id").is_none() && rec.header("x-wx-phone").is_none(),
        "the deleted binding still identifies the session: {rec:?}"
    );
    // a login after the DELETE starts unbound
    let third = gw.login_as(&wx, "o-inherit").await;
    let s = gw.session(&third).await.json();
    assert_eq!(s["account_id"], Value::Null, "{s}");
    assert_eq!(s["phone_number"], Value::Null, "{s}");
}
