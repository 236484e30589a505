//! Bindings record the phone, the accounts file decides the account: a user bound through
//! a `[phone]` entry loses the account when the entry is removed (live sessions at their
//! next request, the next login, the admin view), gets it back when the entry returns, and
//! moves with a changed entry — while the binding keeps the verified phone throughout. The
//! 409 `account_conflict` rule is unchanged.

mod common;

use std::time::{Duration, Instant};

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};
use serde_json::Value;

const PHONE_E164: &str = "+8613800138000";

fn accounts(phone_account: Option<&str>) -> String {
    let mut text = String::from("[openid]\n\"o-has-account\" = \"acct-openid\"\n");
    if let Some(a) = phone_account {
        text += &format!("[phone]\n\"13800138000\" = \"{a}\"\n");
    }
    text
}

fn write_accounts(gw: &Gateway, text: &str) {
    let tmp = gw.dir().join("accounts.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, gw.dir().join("accounts.toml")).unwrap();
}

async fn binding(gw: &Gateway, wx: &FakeWechat, openid: &str) -> Value {
    let url = gw.admin_url(&format!("/bindings/{}/{openid}", wx.appid));
    let r = send(client().get(url)).await;
    assert_eq!(r.status, 200, "binding of {openid}: {}", r.text());
    r.json()
}

/// Wait (the watcher, or SIGHUP when `hup`) until `token`'s session shows `want`.
async fn session_account_becomes(gw: &Gateway, token: &str, want: Option<&str>, hup: bool) {
    let want = want.map_or(Value::Null, Value::from);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = gw.session(token).await.json();
        if s["account_id"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "account never became {want}: {s}"
        );
        if hup {
            gw.signal("HUP");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every view of the user agrees on `account`, and all keep the verified phone.
async fn assert_everywhere(
    wx: &FakeWechat,
    gw: &Gateway,
    echo: &Echo,
    tokens: &[&str],
    account: Option<&str>,
) {
    let want = account.map_or(Value::Null, Value::from);
    let fresh = gw.login_as(wx, "o-file").await;
    for token in tokens.iter().copied().chain([fresh.as_str()]) {
        let s = gw.session(token).await.json();
        assert_eq!(s["account_id"], want, "{s}");
        assert_eq!(s["phone_number"], PHONE_E164, "{s}");
        assert_eq!(gw.call("GET", "/req/who", Some(token)).await.status, 200);
        let rec = echo.last();
        assert_eq!(rec.header("x-wx-account-id"), account, "{rec:?}");
        assert_eq!(rec.header("x-wx-phone"), Some(PHONE_E164), "{rec:?}");
    }
    let b = binding(gw, wx, "o-file").await;
    assert_eq!(b["phone_number"], PHONE_E164, "{b}");
    assert_eq!(b["account_id"], want, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accounts_file_decides_the_account_of_a_bound_phone() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", &accounts(Some("acct-1")))
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let verified = gw.login_as(&wx, "o-file").await;
    wx.add_phone_code("p", "13800138000", "86");
    let r = gw.phone(&verified, "p").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], "acct-1");
    // a second session that inherits the binding at login
    let inherited = gw.login_as(&wx, "o-file").await;
    let tokens = [verified.as_str(), inherited.as_str()];
    assert_everywhere(&wx, &gw, &echo, &tokens, Some("acct-1")).await;

    // the [phone] entry removed (the watcher sees the file change): the account goes
    write_accounts(&gw, &accounts(None));
    session_account_becomes(&gw, &verified, None, false).await;
    assert_everywhere(&wx, &gw, &echo, &tokens, None).await;

    // put back (and SIGHUP): it returns
    write_accounts(&gw, &accounts(Some("acct-1")));
    session_account_becomes(&gw, &inherited, Some("acct-1"), true).await;
    assert_everywhere(&wx, &gw, &echo, &tokens, Some("acct-1")).await;

    // a changed entry moves every user bound through that phone
    write_accounts(&gw, &accounts(Some("acct-2")));
    session_account_becomes(&gw, &verified, Some("acct-2"), false).await;
    assert_everywhere(&wx, &gw, &echo, &tokens, Some("acct-2")).await;
    assert_eq!(wx.calls("/wxa/business/getuserphonenumber"), 1);

    // 409: a session with another account cannot take this phone, and nothing changes
    let other = gw.login_as(&wx, "o-has-account").await;
    wx.add_phone_code("q", "13800138000", "86");
    assert_error(&gw.phone(&other, "q").await, 409, "account_conflict");
    let url = gw.admin_url(&format!("/bindings/{}/o-has-account", wx.appid));
    assert_error(&send(client().get(url)).await, 404, "not_found");
    let s = gw.session(&other).await.json();
    assert_eq!(s["account_id"], "acct-openid", "{s}");
    assert_eq!(s["phone_number"], Value::Null, "{s}");
}
