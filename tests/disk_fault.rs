//! A disk fault heals: with the memory store's bindings file unable to grow (the file-size
//! limit of the running gateway lowered with `prlimit`, as a full disk would do), a bind
//! answers 500 `internal_error`, nothing unstored is acknowledged, the process survives
//! (SIGXFSZ is ignored) and `/readyz` answers 503; once the limit is lifted, `/readyz` is
//! 200 again and binding works again without a restart, with every earlier binding kept —
//! also across a restart afterwards.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};
use serde_json::Value;

fn prlimit_available() -> bool {
    let found = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but prlimit (util-linux) is not installed"
        );
        eprintln!("NOTE: prlimit not found; skipping the disk fault test");
    }
    found
}

/// Set the soft RLIMIT_FSIZE of the gateway (`limit` bytes, or "unlimited").
fn set_fsize(gw: &Gateway, limit: &str) {
    let st = Command::new("prlimit")
        .arg("--pid")
        .arg(gw.pid().to_string())
        .arg(format!("--fsize={limit}:"))
        .status()
        .expect("run prlimit");
    assert!(st.success(), "prlimit --fsize={limit}: failed");
}

async fn bind(wx: &FakeWechat, gw: &Gateway, token: &str) -> common::Resp {
    let code = format!("p-{}", common::random_hex(4));
    wx.add_phone_code(&code, "13800138000", "86");
    gw.phone(token, &code).await
}

async fn readyz(gw: &Gateway) -> u16 {
    send(client().get(gw.admin_url("/readyz"))).await.status
}

async fn binding(gw: &Gateway, wx: &FakeWechat, openid: &str) -> common::Resp {
    send(client().get(gw.admin_url(&format!("/bindings/{}/{openid}", wx.appid)))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_binding_write_heals_once_the_disk_takes_writes_again() {
    if !prlimit_available() {
        return;
    }
    let wx = FakeWechat::start().await;
    let data = tempfile::tempdir().unwrap();
    let b = GatewayBuilder::new(&wx).section(&format!(
        "[session]\ndata_dir = \"{}\"",
        data.path().display()
    ));
    let mut gw = b.clone().start().await;
    let mut bound = Vec::new();
    for i in 0..3 {
        let openid = format!("o-before-{i}");
        let token = gw.login_as(&wx, &openid).await;
        assert_eq!(bind(&wx, &gw, &token).await.status, 200);
        bound.push(openid);
    }
    assert_eq!(readyz(&gw).await, 200);

    // the disk "fills up": the bindings file cannot be written
    set_fsize(&gw, "1");
    let victim = gw.login_as(&wx, "o-during").await;
    let r = bind(&wx, &gw, &victim).await;
    assert_error(&r, 500, "internal_error");
    assert!(gw.try_exit().is_none(), "the gateway died:\n{}", gw.logs());
    // the contract: an internal error is logged with the request id
    let id = r.header("x-request-id").expect("a request id on the 500");
    let logged = common::wait_until(Duration::from_secs(2), || {
        gw.logs().lines().any(|l| {
            l.contains(" ERROR ") && l.contains("internal error") && l.contains(id.as_str())
        })
    })
    .await;
    assert!(logged, "no ERROR line with request id {id}:\n{}", gw.logs());
    assert_error(&binding(&gw, &wx, "o-during").await, 404, "not_found");
    let s = gw.session(&victim).await.json();
    assert_eq!(
        s["phone_number"],
        Value::Null,
        "unstored phone acknowledged: {s}"
    );
    assert_eq!(
        readyz(&gw).await,
        503,
        "/readyz while bindings cannot be written"
    );
    let again = bind(&wx, &gw, &victim).await;
    assert_error(&again, 500, "internal_error");
    assert_eq!(readyz(&gw).await, 503);

    // the disk is fine again: ready and binding again, no restart
    set_fsize(&gw, "unlimited");
    let healed = common::wait_until_async(Duration::from_secs(5), || async {
        readyz(&gw).await == 200
    })
    .await;
    assert!(
        healed,
        "/readyz stayed 503 after the fault ended:\n{}",
        gw.logs()
    );
    let r = bind(&wx, &gw, &victim).await;
    assert_eq!(r.status, 200, "bind after the fault: {}", r.text());
    bound.push("o-during".into());
    let late = gw.login_as(&wx, "o-after").await;
    assert_eq!(bind(&wx, &gw, &late).await.status, 200);
    bound.push("o-after".into());
    for openid in &bound {
        let r = binding(&gw, &wx, openid).await;
        assert_eq!(r.status, 200, "{openid} lost: {}", r.text());
    }

    // and all of it is on disk
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(10)).await.is_some());
    let gw = b.start().await;
    for openid in &bound {
        let r = binding(&gw, &wx, openid).await;
        assert_eq!(r.status, 200, "{openid} lost after a restart: {}", r.text());
    }
}
