//! `GET /wx/session?verify=true`: `session_key_valid` from WeChat's checksession (the
//! HMAC-SHA256 signature of WeChat.md), false once a second `wx.login` replaced the key,
//! null when WeChat cannot be asked (the answer still 200), absent without `verify`;
//! counted in metrics; the signature is sent, never the key.

mod common;

use common::{FakeWechat, GatewayBuilder, metric_sum};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_makes_the_first_key_stale() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).rust_log("trace").start().await;
    let key1 = wx.add_code("c1", "o-check", None);
    let first = gw.token("c1").await;

    let plain = gw.session(&first).await;
    assert_eq!(plain.status, 200);
    assert!(
        plain.json().get("session_key_valid").is_none(),
        "{}",
        plain.text()
    );
    assert_eq!(wx.calls("/wxa/checksession"), 0);

    for q in ["verify=true", "verify=1"] {
        let r = gw
            .call("GET", &format!("/wx/session?{q}"), Some(&first))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["session_key_valid"], true, "{q}: {}", r.text());
        assert_eq!(r.json()["openid"], "o-check");
    }

    let key2 = wx.add_code("c2", "o-check", None);
    let second = gw.token("c2").await;
    let stale = gw
        .call("GET", "/wx/session?verify=true", Some(&first))
        .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.json()["session_key_valid"], false, "{}", stale.text());
    let fresh = gw
        .call("GET", "/wx/session?verify=true", Some(&second))
        .await;
    assert_eq!(fresh.json()["session_key_valid"], true);

    // WeChat busy: unknown, not an error
    wx.queue_token_errors(&[-1]);
    let unknown = gw
        .call("GET", "/wx/session?verify=true", Some(&second))
        .await;
    assert_eq!(unknown.status, 200, "{}", unknown.text());
    assert!(
        unknown.json()["session_key_valid"].is_null(),
        "{}",
        unknown.text()
    );
    assert!(unknown.json().get("session_key_valid").is_some());

    // an invalidated access_token mid-way: refreshed once, the check still answers
    wx.invalidate_token(&wx.appid);
    let after = gw
        .call("GET", "/wx/session?verify=true", Some(&second))
        .await;
    assert_eq!(after.json()["session_key_valid"], true, "{}", after.text());

    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "wxgate_checksession_total", "result=\"valid\""),
        4.0,
        "{m}"
    );
    assert_eq!(
        metric_sum(&m, "wxgate_checksession_total", "result=\"stale\""),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "wxgate_checksession_total", "result=\"unknown\""),
        1.0
    );
    for query in wx.queries() {
        for key in [&key1, &key2] {
            assert!(
                !query.contains(key.trim_end_matches('=')),
                "a key went to WeChat"
            );
        }
    }
    let logs = gw.logs();
    for key in [&key1, &key2] {
        assert!(
            !logs.contains(key.trim_end_matches('=')),
            "a key is in the logs"
        );
    }
    for r in [&plain, &stale, &fresh, &unknown, &after] {
        assert!(!r.dump().contains("SESSIONKEY"), "{}", r.dump());
    }
}
