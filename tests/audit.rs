//! The audit log: one JSON object per line (`"target": "wxgate::audit"`) for `login`,
//! `login_failed`, `phone_verified`, `logout` and `binding_deleted`, in text and JSON log
//! formats alike and even when `RUST_LOG` turns `wxgate::audit` off; the request id is the
//! one the response carries, phones are masked, and no token, session_key, code or secret
//! appears in any audit line.

mod common;

use common::{FakeWechat, Gateway, GatewayBuilder, client, send, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

/// The audit lines the gateway wrote so far, parsed.
fn audit_lines(gw: &Gateway) -> Vec<Value> {
    gw.logs()
        .lines()
        .filter(|l| l.contains("\"target\":\"wxgate::audit\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn wait_for_events(gw: &Gateway, n: usize) -> Vec<Value> {
    assert!(
        wait_until(Duration::from_secs(3), || audit_lines(gw).len() >= n).await,
        "fewer than {n} audit lines:\n{}",
        gw.logs()
    );
    audit_lines(gw)
}

async fn login_with_id(gw: &Gateway, code: &str, request_id: &str) -> common::Resp {
    let req = client()
        .post(gw.url("/wx/login"))
        .header("x-request-id", request_id)
        .json(&json!({ "code": code }));
    send(req).await
}

async fn scenario(gw: &Gateway, wx: &FakeWechat) -> (Vec<Value>, Vec<String>) {
    let key = wx.add_code("c-audit", "o-audit", None);
    let ok = login_with_id(gw, "c-audit", "req-login-1").await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let token = ok.json()["token"].as_str().unwrap().to_string();
    wx.add_error_code("c-bad", 40029);
    let bad = login_with_id(gw, "c-bad", "req-login-2").await;
    assert_eq!(bad.status, 400);
    wx.add_phone_code("p-audit", "13800138000", "86");
    assert_eq!(gw.phone(&token, "p-audit").await.status, 200);
    assert_eq!(
        gw.call("POST", "/wx/logout", Some(&token)).await.status,
        204
    );
    let url = gw.admin_url(&format!("/bindings/{}/o-audit", wx.appid));
    let r = send(client().delete(url).header("x-request-id", "req-admin-1")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let lines = wait_for_events(gw, 5).await;
    let secrets = vec![
        token,
        key.trim_end_matches('=').to_string(),
        wx.secret.clone(),
        "c-audit".into(),
        "c-bad".into(),
        "p-audit".into(),
        "13800138000".into(),
    ];
    (lines, secrets)
}

fn check(lines: &[Value], secrets: &[String], appid: &str) {
    // threads flush their own buffers, so lines of one batch may come in any order
    let mut events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "binding_deleted",
            "login",
            "login_failed",
            "logout",
            "phone_verified"
        ],
        "{lines:#?}"
    );
    let of = |event: &str| lines.iter().find(|l| l["event"] == event).unwrap();
    for line in lines {
        let o = line.as_object().unwrap();
        for field in [
            "target",
            "event",
            "time",
            "request_id",
            "appid",
            "openid",
            "account_id",
            "client_ip",
            "outcome",
            "phone",
        ] {
            assert!(o.contains_key(field), "{field} missing in {line}");
        }
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(common::parse_rfc3339_utc(line["time"].as_str().unwrap()).is_some());
        assert_eq!(line["client_ip"], "127.0.0.1");
        let text = line.to_string();
        for s in secrets {
            assert!(!text.contains(s.as_str()), "{s:?} in an audit line: {text}");
        }
    }
    let (login, failed, phone) = (of("login"), of("login_failed"), of("phone_verified"));
    let (logout, deleted) = (of("logout"), of("binding_deleted"));
    assert_eq!(login["request_id"], "req-login-1");
    assert_eq!(
        (login["openid"].as_str(), login["outcome"].as_str()),
        (Some("o-audit"), Some("ok"))
    );
    assert_eq!(login["appid"], appid);
    assert_eq!(failed["request_id"], "req-login-2");
    assert!(failed["openid"].is_null(), "{failed}");
    assert_eq!(failed["outcome"], "invalid_code");
    assert_eq!(phone["phone"], "+86138****8000");
    assert_eq!(phone["account_id"], "acct-phone");
    assert_eq!(logout["openid"], "o-audit");
    assert_eq!(logout["phone"], "+86138****8000");
    assert_eq!(deleted["request_id"], "req-admin-1");
    assert_eq!(deleted["openid"], "o-audit");
}

fn builder(wx: &FakeWechat) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .file(
            "accounts.toml",
            "[phone]\n\"13800138000\" = \"acct-phone\"\n",
        )
        .section("[accounts]\nfile = \"accounts.toml\"")
        // RUST_LOG turns the audit target off, and everything else down: it still writes
        .rust_log("error,wxgate=info,wxgate::audit=off,wxgate::access=off")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_in_the_text_format_despite_rust_log() {
    let wx = FakeWechat::start().await;
    let gw = builder(&wx).start().await;
    let (lines, secrets) = scenario(&gw, &wx).await;
    check(&lines, &secrets, &wx.appid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_in_the_json_format_at_level_error() {
    let wx = FakeWechat::start().await;
    let gw = builder(&wx)
        .section("[log]\nformat = \"json\"\nlevel = \"error\"")
        .start()
        .await;
    let (lines, secrets) = scenario(&gw, &wx).await;
    check(&lines, &secrets, &wx.appid);
}
