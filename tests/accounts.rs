//! The accounts file at run time: a change is picked up (on change or SIGHUP) without a
//! restart and live sessions carry the new account from their next request; a removed
//! entry removes the account; a file that fails to parse keeps the previous mapping.

mod common;

use std::time::{Duration, Instant};

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, wait_until};

/// Poll the required route with `token` until the upstream sees `want` as the account.
async fn account_becomes(gw: &Gateway, echo: &Echo, token: &str, want: Option<&str>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let r = gw.call("GET", "/req/acct", Some(token)).await;
        if r.status == 200 && echo.last().header("x-wx-account-id") == want {
            return true;
        }
        gw.signal("HUP");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    false
}

fn write_accounts(gw: &Gateway, text: &str) {
    let tmp = gw.dir().join("accounts.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, gw.dir().join("accounts.toml")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_file_reload_reaches_live_sessions() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c", "o-reload", Some("u-reload"));
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", "[openid]\n\"o-reload\" = \"10001\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let token = gw.token("c").await;
    assert!(account_becomes(&gw, &echo, &token, Some("10001")).await);

    write_accounts(&gw, "[openid]\n\"o-reload\" = \"20002\"\n");
    assert!(
        account_becomes(&gw, &echo, &token, Some("20002")).await,
        "changed entry not picked up"
    );

    write_accounts(&gw, "[openid\nthis is not toml = = =\n");
    gw.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(3), || gw.logs().contains(
            "accounts file not reloaded; keeping the previous mapping"
        ))
        .await,
        "the parse error was not logged:\n{}",
        gw.logs()
    );
    assert!(
        account_becomes(&gw, &echo, &token, Some("20002")).await,
        "a broken file changed the mapping"
    );

    write_accounts(&gw, "[unionid]\n\"u-other\" = \"30003\"\n");
    assert!(
        account_becomes(&gw, &echo, &token, None).await,
        "a removed entry kept the account"
    );
}
