//! Leak scan for the WeChat services of CONTRACT section 10: after decrypt calls (good,
//! tampered, foreign, malformed), the legacy phone shape, `verify=true` (valid, stale,
//! unknown), logins through the risk check (passed, blocked, failed) and relay calls (a PNG,
//! errcode answers, a refused token mid-way, a caller's own `access_token`, paths off the
//! list, a body too large), no session_key, app secret or access_token appears in any
//! response of either listener, any request the upstream received, `/metrics`, or the
//! gateway's output at `RUST_LOG=trace`.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::fake_services::encrypt;
use common::{
    Echo, FakeWechat, Gateway, GatewayBuilder, assert_nothing_leaked, client, random_hex, send,
    wait_until,
};
use serde_json::{Value, json};

/// A session_key as WeChat hands them out: base64 of 16 random bytes.
fn random_key() -> String {
    let bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&random_hex(1), 16).unwrap_or(i))
        .collect();
    STANDARD.encode(bytes)
}

async fn call_json(gw: &Gateway, path: &str, token: &str, body: &Value) -> String {
    let req = client().post(gw.url(path)).bearer_auth(token).json(body);
    send(req).await.dump()
}

/// Decrypt, legacy phone and verify calls for the user whose key is `key`.
async fn user_traffic(wx: &FakeWechat, gw: &Gateway, token: &str, key: &str) -> Vec<String> {
    let iv = STANDARD.encode([5u8; 16]);
    let mine = json!({"openId": "o-svc-1", "watermark": {"appid": wx.appid, "timestamp": 1}});
    let foreign = json!({"watermark": {"appid": "wxffffffffffffffff", "timestamp": 1}});
    let phone = json!({"phoneNumber": "13800138000", "purePhoneNumber": "13800138000",
        "countryCode": "86", "watermark": {"appid": wx.appid, "timestamp": 1}});
    let good = encrypt(key, &iv, &mine);
    let mut tampered = STANDARD.decode(&good).unwrap();
    tampered[3] ^= 0x40;
    let mut dumps = Vec::new();
    for body in [
        json!({"encryptedData": good, "iv": iv}),
        json!({"encryptedData": STANDARD.encode(&tampered), "iv": iv}),
        json!({"encryptedData": encrypt(key, &iv, &foreign), "iv": iv}),
        json!({"encryptedData": "%%%not base64", "iv": iv}),
        json!({"encryptedData": good, "iv": "AAAA"}),
        json!({"encryptedData": good}),
    ] {
        dumps.push(call_json(gw, "/wx/decrypt", token, &body).await);
    }
    let legacy = json!({"encryptedData": encrypt(key, &iv, &phone), "iv": iv});
    dumps.push(call_json(gw, "/wx/phone", token, &legacy).await);
    dumps.push(
        gw.call("GET", "/wx/session?verify=true", Some(token))
            .await
            .dump(),
    );
    wx.queue_token_errors(&[-1]);
    dumps.push(
        gw.call("GET", "/wx/session?verify=1", Some(token))
            .await
            .dump(),
    );
    wx.invalidate_token(&wx.appid);
    dumps.push(
        gw.call("GET", "/wx/session?verify=true", Some(token))
            .await
            .dump(),
    );
    for path in ["/req/a", "/opt/b"] {
        dumps.push(gw.call("GET", path, Some(token)).await.dump());
    }
    // the traffic did what it should: opened, refused, bound, checked
    let status = |i: usize| dumps[i].lines().next().unwrap_or("").to_string();
    let statuses: Vec<String> = (0..dumps.len()).map(status).collect();
    assert_eq!(
        statuses,
        [
            "200", "400", "400", "400", "400", "400", "200", "200", "200", "200", "200", "200"
        ],
        "{dumps:#?}"
    );
    assert!(dumps[6].contains("+8613800138000") && dumps[7].contains("\"session_key_valid\":true"));
    dumps
}

/// Relay calls of every kind; returns the response dumps.
async fn relay_traffic(wx: &FakeWechat, gw: &Gateway) -> Vec<String> {
    let relay = |path: &str| gw.admin_url(&format!("/wechat/api/{path}"));
    let mut dumps = Vec::new();
    let calls = [
        (
            "wxa/getwxacodeunlimit?access_token=CALLER",
            json!({"scene": "s=1"}),
        ),
        ("wxa/getwxacode", json!({"path": "pages/a"})),
        ("wxa/getwxacodeunlimit", json!({})),
        (
            "cgi-bin/message/subscribe/send",
            json!({"touser": "o-svc-1"}),
        ),
        ("cgi-bin/message/subscribe/send", json!({})),
        ("cgi-bin/wxaapp/setting", json!({})),
        ("wxa/getwxacodeunlimit/x", json!({"scene": "s"})),
    ];
    for (i, (path, body)) in calls.iter().enumerate() {
        if i == 3 {
            wx.invalidate_token(&wx.appid);
        }
        let resp = client().post(relay(path)).json(body).send().await.unwrap();
        let status = resp.status();
        let headers = format!("{:?}", resp.headers());
        let bytes = resp.bytes().await.unwrap();
        dumps.push(format!(
            "{status} {headers} {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let big = json!({"touser": "o", "pad": "x".repeat(4096)});
    let r = send(
        client()
            .post(relay("cgi-bin/message/subscribe/send"))
            .json(&big),
    )
    .await;
    assert_eq!(r.status, 413);
    dumps.push(r.dump());
    dumps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_from_the_services() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .rust_log("trace")
        .server("max_body_bytes", "2048")
        .route("/req/", &echo.url, "required")
        .route("/opt/", &echo.url, "optional")
        .section("[relay]\nenabled = true\n[risk]\nenabled = true")
        .start()
        .await;
    let appid = wx.appid.clone();
    let key = random_key();
    wx.add_code_with_key(&appid, "svc-1", "o-svc-1", None, &key);
    let mut keys = vec![key.clone()];
    let token = gw.token("svc-1").await;
    let mut dumps = user_traffic(&wx, &gw, &token, &key).await;

    // a second login replaces the key: the first session's check says stale
    let key2 = random_key();
    wx.add_code_with_key(&appid, "svc-2", "o-svc-1", None, &key2);
    keys.push(key2);
    let token2 = gw.token("svc-2").await;
    dumps.push(
        gw.call("GET", "/wx/session?verify=true", Some(&token))
            .await
            .dump(),
    );
    // risk: blocked, failing (open), passed
    wx.set_risk_rank("o-svc-3", 4);
    for (code, openid) in [("svc-3", "o-svc-3"), ("svc-4", "o-svc-4")] {
        let k = random_key();
        wx.add_code_with_key(&appid, code, openid, None, &k);
        keys.push(k);
        if code == "svc-4" {
            wx.fail_risk(Some(-1));
        }
        dumps.push(gw.login(code).await.dump());
    }
    wx.fail_risk(None);
    dumps.push(gw.call("GET", "/req/after", Some(&token2)).await.dump());
    dumps.extend(relay_traffic(&wx, &gw).await);
    assert_eq!(wx.pngs().len(), 2, "the relay served no QR code");
    assert!(dumps.iter().any(|d| d.contains("user_blocked")));
    assert!(
        dumps
            .iter()
            .any(|d| d.contains("\"session_key_valid\":false"))
    );

    let marker = "leak-scan-services-final";
    let r = send(
        client()
            .get(gw.url("/req/final"))
            .header("x-request-id", marker),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        wait_until(Duration::from_secs(2), || gw.logs().contains(marker)).await,
        "the request's log line never appeared"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    let issued = wx.issued_tokens();
    assert!(issued.len() >= 3, "tokens issued: {}", issued.len());
    let mut secrets: Vec<String> = keys
        .iter()
        .map(|k| k.trim_end_matches('=').to_string())
        .collect();
    secrets.push(wx.secret.clone());
    secrets.extend(issued);
    secrets.push("CALLER".into());
    assert!(echo.count() >= 3);
    assert_nothing_leaked(&gw, &echo, &dumps, &secrets, 20).await;
}
