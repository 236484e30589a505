//! Leak scan for the phone flow: after phone calls that succeed, fail with every kind of
//! WeChat error, hit an invalidated access_token (40001 retry), a watermark mismatch and a
//! conflict, no access_token, app secret or session_key appears in the gateway's output at
//! `RUST_LOG=trace`, in any response on the public listener, in any request the upstream
//! received, or in `/metrics`; phones show in the logs only masked, in the audit lines.

mod common;

use std::time::Duration;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_nothing_leaked, wait_until};
use serde_json::json;

/// Phone calls of every outcome; returns the client-side response dumps.
async fn phone_traffic(wx: &FakeWechat, gw: &Gateway, tokens: &[String]) -> Vec<String> {
    let mut dumps = Vec::new();
    let info = common::fake_tokens::phone_info("13800138000", json!("86"), "wx00000000000000ff");
    wx.add_phone_info("wm", &wx.appid.clone(), info);
    for (i, errcode) in [40029, 40163, -1, 45009, 40013].into_iter().enumerate() {
        wx.add_phone_error(&format!("e{i}"), errcode);
    }
    wx.add_phone_code("ok1", "13800138000", "86");
    wx.add_phone_code("ok2", "4155550123", "1");
    wx.add_phone_code("conflict", "13900139000", "86");
    let mut plan: Vec<(usize, String)> = vec![(0, "ok1".into()), (0, "wm".into())];
    plan.extend((0..5).map(|i| (1, format!("e{i}"))));
    plan.push((2, "conflict".into()));
    for (who, code) in plan {
        dumps.push(gw.phone(&tokens[who], &code).await.dump());
    }
    wx.invalidate_token(&wx.appid);
    dumps.push(gw.phone(&tokens[1], "ok2").await.dump());
    wx.queue_phone_errors(&[40001, 40001]);
    wx.add_phone_code("twice", "13800138000", "86");
    dumps.push(gw.phone(&tokens[0], "twice").await.dump());
    for t in tokens {
        for (m, p) in [("GET", "/wx/session"), ("GET", "/req/a"), ("GET", "/pub/b")] {
            dumps.push(gw.call(m, p, Some(t)).await.dump());
        }
    }
    dumps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_token_leaks_anywhere() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let accounts = "[openid]\n\"o-l2\" = \"acct-x\"\n[phone]\n\"13900139000\" = \"acct-y\"\n";
    let gw = GatewayBuilder::new(&wx)
        .rust_log("trace")
        .file("accounts.toml", accounts)
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let mut keys = Vec::new();
    let mut tokens = Vec::new();
    for (i, openid) in ["o-l0", "o-l1", "o-l2"].into_iter().enumerate() {
        keys.push(wx.add_code(&format!("c{i}"), openid, None));
        tokens.push(gw.token(&format!("c{i}")).await);
    }
    let dumps = phone_traffic(&wx, &gw, &tokens).await;
    let statuses: Vec<&str> = dumps.iter().map(|d| &d[..3]).collect();
    assert_eq!(
        &statuses[..9],
        [
            "200", "502", "400", "400", "503", "502", "502", "409", "200"
        ]
    );
    assert_eq!(statuses[9], "502", "the double 40001");
    let marker = "leak-scan-phone-final";
    let req = common::client()
        .get(gw.url("/pub/final"))
        .header("x-request-id", marker);
    assert_eq!(common::send(req).await.status, 200);
    assert!(
        wait_until(Duration::from_secs(2), || gw.logs().contains(marker)).await,
        "the request's log line never appeared"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let issued = wx.issued_tokens();
    assert!(
        issued.len() >= 2,
        "the 40001 path did not fetch a new token"
    );
    let mut secrets: Vec<String> = issued.clone();
    secrets.extend(issued.iter().map(|t| t["ACCESSTOKEN-".len()..].to_string()));
    secrets.push(wx.secret.clone());
    secrets.extend(keys.iter().map(|k| k.trim_end_matches('=').to_string()));
    assert!(echo.count() >= 6, "the upstream saw too little");
    assert_nothing_leaked(&gw, &echo, &dumps, &secrets, 20).await;
    // the audit log names phones masked only, and no other line names them at all
    let logs = gw.logs();
    assert!(
        logs.contains("+86138****8000"),
        "no masked phone in the audit log"
    );
    for phone in ["13800138000", "4155550123", "13900139000"] {
        assert!(!logs.contains(phone), "the phone {phone} is in the logs");
    }
}
