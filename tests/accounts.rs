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

const RELOADED: &str = "accounts file reloaded";
const NOT_RELOADED: &str = "accounts file not reloaded; keeping the previous mapping";

/// The gateway's log lines (text format) that carry `message`.
fn lines_with(gw: &Gateway, message: &str) -> Vec<String> {
    gw.logs()
        .lines()
        .filter(|l| l.contains(message))
        .map(str::to_string)
        .collect()
}

/// Wait until a reload line past the first `skip` ones says `entries=N`; every reload line
/// is at INFO level.
async fn assert_reloaded(gw: &Gateway, skip: usize, entries: usize) {
    let field = format!(" entries={entries}");
    let logged = wait_until(Duration::from_secs(3), || {
        lines_with(gw, RELOADED)
            .iter()
            .skip(skip)
            .any(|l| l.contains(&field))
    })
    .await;
    assert!(logged, "no reload line with{field}:\n{}", gw.logs());
    for line in lines_with(gw, RELOADED) {
        assert!(line.contains(" INFO "), "{line}");
    }
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
    assert!(
        account_becomes(&gw, &echo, &token, Some("10001")).await,
        "the account from the file at start-up was not injected"
    );

    let before = lines_with(&gw, RELOADED).len();
    write_accounts(
        &gw,
        "[openid]\n\"o-reload\" = \"20002\"\n\"o-other\" = \"20003\"\n",
    );
    assert!(
        account_becomes(&gw, &echo, &token, Some("20002")).await,
        "changed entry not picked up"
    );
    assert_reloaded(&gw, before, 2).await;

    write_accounts(&gw, "[openid\nthis is not toml = = =\n");
    gw.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(3), || !lines_with(&gw, NOT_RELOADED)
            .is_empty())
        .await,
        "the parse error was not logged:\n{}",
        gw.logs()
    );
    // Reloads are logged in order by one task: every reload of the good file is above.
    let reloads = lines_with(&gw, RELOADED).len();
    for line in lines_with(&gw, NOT_RELOADED) {
        assert!(line.contains(" ERROR "), "{line}");
        let error = line.split_once(" error=").map_or("", |(_, e)| e);
        assert!(
            error.contains("accounts.toml") && error.contains("TOML parse error"),
            "the error field does not name the file and the parse error: {line}"
        );
    }
    assert!(
        account_becomes(&gw, &echo, &token, Some("20002")).await,
        "a broken file changed the mapping"
    );
    // (longer than the watcher's settle time and the log's flush interval)
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        lines_with(&gw, RELOADED).len(),
        reloads,
        "a broken file was reported as reloaded:\n{}",
        gw.logs()
    );

    write_accounts(&gw, "[unionid]\n\"u-other\" = \"30003\"\n");
    assert!(
        account_becomes(&gw, &echo, &token, None).await,
        "a removed entry kept the account"
    );
    assert_reloaded(&gw, reloads, 1).await;
}
