//! Leak scan: after logins (successes and every kind of error), session calls, proxied
//! calls and logout, no session_key, app secret or bearer token appears in the gateway's
//! output at `RUST_LOG=trace`, and no session_key or app secret in any client response
//! (headers and bodies), any request the upstream received, or `/metrics`.

mod common;

use std::time::Duration;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_clean, client, send, wait_until};
use serde_json::json;

/// Log in with success and error codes; returns (tokens, session keys, response dumps).
async fn logins(wx: &FakeWechat, gw: &Gateway) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut keys = vec![
        wx.add_code("ok-1", "o-leak-1", Some("u-leak-1")),
        wx.add_code("ok-2", "o-leak-2", None),
        wx.add_code("ok-3", "o-leak-3", None),
    ];
    keys.push(wx.add_code("reused", "o-leak-4", None));
    for (i, errcode) in [40029, 40226, 45011, -1, 40125, 45009]
        .into_iter()
        .enumerate()
    {
        wx.add_error_code(&format!("err-{i}"), errcode);
        wx.add_error_code_as_string(&format!("errs-{i}"), errcode);
    }
    let mut dumps = Vec::new();
    let mut tokens = Vec::new();
    let mut codes: Vec<String> = ["ok-1", "ok-2", "ok-3", "reused", "reused", "unknown"]
        .map(String::from)
        .to_vec();
    codes.extend((0..6).flat_map(|i| [format!("err-{i}"), format!("errs-{i}")]));
    for code in codes {
        let r = gw.login(&code).await;
        if r.status == 200 {
            tokens.push(r.json()["token"].as_str().unwrap().to_string());
        }
        dumps.push(r.dump());
    }
    assert_eq!(tokens.len(), 4, "successful logins: {dumps:?}");
    (tokens, keys, dumps)
}

/// Session, proxy and logout calls with every token; returns the response dumps.
async fn traffic(gw: &Gateway, tokens: &[String]) -> Vec<String> {
    let mut dumps = Vec::new();
    for t in tokens {
        for (m, p) in [
            ("GET", "/wx/session"),
            ("GET", "/req/a"),
            ("POST", "/opt/b"),
            ("GET", "/pub/c"),
            ("GET", "/none"),
        ] {
            dumps.push(gw.call(m, p, Some(t)).await.dump());
        }
        let body = json!({"hello": "world"}).to_string();
        let req = client()
            .post(gw.url("/req/post?q=1"))
            .bearer_auth(t)
            .body(body);
        dumps.push(send(req).await.dump());
    }
    dumps.push(gw.call("POST", "/wx/logout", Some(&tokens[0])).await.dump());
    dumps.push(gw.call("GET", "/wx/session", Some(&tokens[0])).await.dump());
    dumps.push(gw.call("GET", "/req/a", None).await.dump());
    for p in ["/metrics", "/healthz", "/readyz"] {
        dumps.push(send(client().get(gw.admin_url(p))).await.dump());
    }
    dumps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_anywhere() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .rust_log("trace")
        .file("accounts.toml", "[openid]\n\"o-leak-1\" = \"a-1\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .route("/opt/", &echo.url, "optional")
        .route("/pub/", &echo.url, "public")
        .start()
        .await;
    let (tokens, keys, mut dumps) = logins(&wx, &gw).await;
    dumps.extend(traffic(&gw, &tokens).await);
    let marker = "leak-scan-final-request";
    let r = send(
        client()
            .get(gw.url("/pub/final"))
            .header("x-request-id", marker),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        wait_until(Duration::from_secs(2), || gw.logs().contains(marker)).await,
        "the request's log line never appeared"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // session keys without their `==`, so a re-encoded or truncated form is caught too
    let mut secrets: Vec<String> = keys
        .iter()
        .map(|k| k.trim_end_matches('=').to_string())
        .collect();
    secrets.push(wx.secret.clone());
    for (i, d) in dumps.iter().enumerate() {
        assert_clean(&format!("client response #{i}"), d, &secrets);
    }
    for rec in echo.records() {
        assert_clean(
            &format!("upstream request {}", rec.uri),
            &rec.dump(),
            &secrets,
        );
        for t in &tokens {
            assert!(
                !rec.dump().contains(t.as_str()),
                "a bearer token reached the upstream"
            );
        }
    }
    assert_clean("/metrics", &gw.metrics().await, &secrets);
    let logs = gw.logs();
    assert!(
        logs.lines().count() >= 10,
        "suspiciously little output at trace:\n{logs}"
    );
    assert_clean("the gateway's log output", &logs, &secrets);
    for t in &tokens {
        let tail = &t[4..];
        assert!(!logs.contains(tail), "a bearer token appears in the logs");
    }
}
