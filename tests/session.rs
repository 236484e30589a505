//! `GET /wx/session`, `POST /wx/logout`, 401 for missing/garbage/unknown/revoked tokens
//! (with `WWW-Authenticate: Bearer`), 405 with `Allow` on the auth paths, their precedence
//! over a catch-all route, and a custom `[server] auth_prefix`.

mod common;

use common::{
    Echo, FakeWechat, GatewayBuilder, assert_error, client, now_secs, parse_rfc3339_utc, send,
};
use serde_json::Value;

/// A 401 `unauthenticated` with a Bearer challenge.
fn assert_unauthenticated(r: &common::Resp) {
    assert_error(r, 401, "unauthenticated");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "WWW-Authenticate: {challenge:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_has_the_contract_shape() {
    let wx = FakeWechat::start().await;
    wx.add_code("c", "o-sess", Some("u-sess"));
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", "[openid]\n\"o-sess\" = \"777\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"\n[session]\nttl = \"2h\"")
        .start()
        .await;
    let token = gw.token("c").await;
    let r = gw.call("GET", "/wx/session", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["openid"], "o-sess");
    assert_eq!(b["unionid"], "u-sess");
    assert_eq!(b["appid"], wx.appid.as_str());
    assert_eq!(b["account_id"], "777");
    assert!(
        b.as_object().unwrap().contains_key("phone_number"),
        "phone_number key: {b}"
    );
    assert_eq!(b["phone_number"], Value::Null);
    let at = b["expires_at"].as_str().expect("expires_at string");
    let at = parse_rfc3339_utc(at).unwrap_or_else(|| panic!("not RFC 3339 UTC: {at}"));
    let expected = now_secs() + 7200;
    assert!(
        (at - expected).abs() < 60,
        "expires_at {at} vs now+ttl {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_kills_the_token_at_once() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("c1", "o-out", None);
    wx.add_code("c2", "o-out", None);
    let gw = GatewayBuilder::new(&wx)
        .route("/api/", &echo.url, "required")
        .start()
        .await;
    let t1 = gw.token("c1").await;
    let t2 = gw.token("c2").await;
    assert_eq!(gw.call("GET", "/api/x", Some(&t1)).await.status, 200);
    let r = gw.call("POST", "/wx/logout", Some(&t1)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty(), "204 with a body");
    assert_unauthenticated(&gw.call("GET", "/wx/session", Some(&t1)).await);
    assert_unauthenticated(&gw.call("GET", "/api/x", Some(&t1)).await);
    assert_unauthenticated(&gw.call("POST", "/wx/logout", Some(&t1)).await);
    assert_eq!(echo.count(), 1, "a revoked token reached the upstream");
    let r = gw.call("GET", "/wx/session", Some(&t2)).await;
    assert_eq!(
        r.status,
        200,
        "the other session of the openid died too: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_garbage_and_unknown_tokens_are_unauthenticated() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    let unknown = format!("wxg_{}", "A".repeat(43));
    for path in ["/wx/session", "/wx/logout"] {
        let method = if path == "/wx/session" { "GET" } else { "POST" };
        assert_unauthenticated(&gw.call(method, path, None).await);
        assert_unauthenticated(&gw.call(method, path, Some("garbage")).await);
        assert_unauthenticated(&gw.call(method, path, Some(&unknown)).await);
        assert_unauthenticated(&gw.call(method, path, Some("wxg_")).await);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let basic = client()
            .request(m, gw.url(path))
            .header("authorization", "Basic dTpw");
        assert_unauthenticated(&send(basic).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_on_auth_paths_is_405_with_allow() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    let gw = GatewayBuilder::new(&wx)
        .route("/", &echo.url, "public")
        .start()
        .await;
    for (method, path, allowed) in [
        ("GET", "/wx/login", "POST"),
        ("PUT", "/wx/login", "POST"),
        ("POST", "/wx/session", "GET"),
        ("DELETE", "/wx/session", "GET"),
        ("GET", "/wx/logout", "POST"),
    ] {
        let r = gw.call(method, path, None).await;
        assert_error(&r, 405, "method_not_allowed");
        let allow = r.header("allow").unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
    }
    assert_eq!(
        echo.count(),
        0,
        "an auth path fell through to the `/` route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_paths_take_precedence_over_a_catch_all_route() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("c", "o-prec", None);
    let gw = GatewayBuilder::new(&wx)
        .route("/", &echo.url, "public")
        .start()
        .await;
    let token = gw.token("c").await;
    assert_eq!(
        gw.call("GET", "/wx/session", Some(&token)).await.status,
        200
    );
    assert_unauthenticated(&gw.call("GET", "/wx/session", None).await);
    assert_eq!(echo.count(), 0, "an auth endpoint was forwarded");
    let r = gw.call("GET", "/wx/other", None).await;
    assert_eq!(r.status, 200, "a non-auth path under /wx is a normal route");
    assert_eq!(echo.last().uri, "/wx/other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_auth_prefix_moves_the_endpoints() {
    let wx = FakeWechat::start().await;
    wx.add_code("c", "o-pre", None);
    let gw = GatewayBuilder::new(&wx)
        .server("auth_prefix", "\"/auth\"")
        .start()
        .await;
    let r = send(
        client()
            .post(gw.url("/auth/login"))
            .json(&serde_json::json!({"code": "c"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        gw.call("GET", "/auth/session", Some(&token)).await.status,
        200
    );
    assert_error(&gw.call("POST", "/wx/login", None).await, 404, "not_found");
    assert_eq!(
        gw.call("POST", "/auth/logout", Some(&token)).await.status,
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_unauthenticated() {
    let wx = FakeWechat::start().await;
    let echo = Echo::start().await;
    wx.add_code("c", "o-short", None);
    let gw = GatewayBuilder::new(&wx)
        .section("[session]\nttl = \"1s\"")
        .route("/api/", &echo.url, "optional")
        .start()
        .await;
    let r = gw.login("c").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["expires_in"], serde_json::json!(1));
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        gw.call("GET", "/wx/session", Some(&token)).await.status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_unauthenticated(&gw.call("GET", "/wx/session", Some(&token)).await);
    assert_unauthenticated(&gw.call("GET", "/api/x", Some(&token)).await);
    assert_eq!(echo.count(), 0, "an expired token reached the upstream");
}
