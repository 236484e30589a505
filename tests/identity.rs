//! Identity headers: injected with the right values on `required`/`optional` routes,
//! renamed under `[identity_headers]`, spoofed variants stripped on every route kind,
//! the gateway's bearer token never forwarded while other `Authorization` headers pass,
//! and `[accounts] unbound = "reject"`.

mod common;

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, Recorded, assert_error, client, send};

/// Forged identity lines a client might send (exact spellings, so sent over raw TCP).
const FORGED: &str = "X-WX-OPENID: evil-1\r\nx-wx-openid: evil-2\r\nX_WX_OPENID: evil-3\r\n\
    X-Wx-Anything: evil-4\r\nX-WX-UNIONID: evil-5\r\nX-WX-ACCOUNT-ID: evil-6\r\n\
    X-WX-APPID: evil-7\r\nX-WX-PHONE: evil-8\r\nx_wx_account_id: evil-9\r\n";

/// A gateway with a mapped identity, routes of each kind, and optional extra sections.
async fn setup(wx: &FakeWechat, echo: &Echo, extra: &str) -> (Gateway, String) {
    wx.add_code("c", "o-real", Some("u-real"));
    let mut b = GatewayBuilder::new(wx)
        .file("accounts.toml", "[openid]\n\"o-real\" = \"acct-1\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .route("/req/", &echo.url, "required")
        .route("/opt/", &echo.url, "optional")
        .route("/pub/", &echo.url, "public");
    if !extra.is_empty() {
        b = b.section(extra);
    }
    let gw = b.start().await;
    let token = gw.token("c").await;
    (gw, token)
}

/// No header of `rec` carries a forged value.
fn assert_no_forgery(rec: &Recorded) {
    for (k, v) in &rec.headers {
        assert!(
            !v.contains("evil"),
            "forged header reached the upstream: {k}: {v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_carry_the_session() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (gw, token) = setup(&wx, &echo, "").await;
    for path in ["/req/me", "/opt/me"] {
        assert_eq!(gw.call("GET", path, Some(&token)).await.status, 200);
        let rec = echo.last();
        assert_eq!(rec.header_all("x-wx-openid"), vec!["o-real"], "{path}");
        assert_eq!(
            rec.header_all("x-wx-appid"),
            vec![wx.appid.as_str()],
            "{path}"
        );
        assert_eq!(rec.header_all("x-wx-unionid"), vec!["u-real"], "{path}");
        assert_eq!(rec.header_all("x-wx-account-id"), vec!["acct-1"], "{path}");
        assert!(
            rec.header("x-wx-phone").is_none(),
            "phone without verification"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_unionid_and_account_send_no_header() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (gw, _) = setup(&wx, &echo, "").await;
    wx.add_code("bare", "o-bare", None);
    let token = gw.token("bare").await;
    assert_eq!(gw.call("GET", "/req/me", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-openid"), Some("o-bare"));
    assert!(rec.header("x-wx-unionid").is_none(), "{rec:?}");
    assert!(rec.header("x-wx-account-id").is_none(), "{rec:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_can_be_renamed() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let names = "[identity_headers]\nopenid = \"X-User-Openid\"\nappid = \"X-User-App\"\n\
                 unionid = \"X-User-Union\"\naccount_id = \"X-User-Id\"\nphone = \"X-User-Phone\"";
    let (gw, token) = setup(&wx, &echo, names).await;
    assert_eq!(gw.call("GET", "/req/me", Some(&token)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header_all("x-user-openid"), vec!["o-real"]);
    assert_eq!(rec.header_all("x-user-app"), vec![wx.appid.as_str()]);
    assert_eq!(rec.header_all("x-user-union"), vec!["u-real"]);
    assert_eq!(rec.header_all("x-user-id"), vec!["acct-1"]);
    assert!(
        rec.headers.iter().all(|(k, _)| !k.starts_with("x-wx-")),
        "default names still sent: {rec:?}"
    );
}

/// Send the forged headers to `path` (with a token if given); the upstream must not see them.
async fn send_forged(
    gw: &Gateway,
    path: &str,
    token: Option<&str>,
    extra: &str,
) -> raw::RawResponse {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    raw::get(gw.addr, path, &format!("{auth}{FORGED}{extra}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (gw, token) = setup(&wx, &echo, "").await;
    let cases = [
        ("/req/s", Some(token.as_str())),
        ("/opt/s", Some(&token)),
        ("/opt/s", None),
        ("/pub/s", None),
        ("/pub/s", Some(&token)),
    ];
    for (path, tok) in cases {
        let r = send_forged(&gw, path, tok, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let rec = echo.last();
        assert_no_forgery(&rec);
        let wx_names: Vec<_> = rec
            .headers
            .iter()
            .map(|(k, _)| k.replace('_', "-"))
            .filter(|k| k.starts_with("x-wx-"))
            .collect();
        let allowed = [
            "x-wx-openid",
            "x-wx-appid",
            "x-wx-unionid",
            "x-wx-account-id",
        ];
        assert!(
            wx_names.iter().all(|k| allowed.contains(&k.as_str())),
            "{path}: {wx_names:?}"
        );
        if tok.is_none() || path.starts_with("/pub/") {
            continue;
        }
        assert_eq!(rec.header_all("x-wx-openid"), vec!["o-real"], "{path}");
        assert_eq!(rec.header_all("x-wx-account-id"), vec!["acct-1"], "{path}");
    }
    assert_eq!(echo.count(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_renamed_headers_never_reach_the_upstream() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let names = "[identity_headers]\nopenid = \"X-User-Openid\"\naccount_id = \"X-User-Id\"";
    let (gw, token) = setup(&wx, &echo, names).await;
    let extra = "X-User-Openid: evil-10\r\nX_USER_ID: evil-11\r\nx-user-id: evil-12\r\n";
    for (path, tok) in [
        ("/req/r", Some(token.as_str())),
        ("/opt/r", None),
        ("/pub/r", None),
    ] {
        let r = send_forged(&gw, path, tok, extra).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let rec = echo.last();
        assert_no_forgery(&rec);
        if tok.is_some() {
            assert_eq!(rec.header_all("x-user-openid"), vec!["o-real"]);
            assert_eq!(rec.header_all("x-user-id"), vec!["acct-1"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_bearer_is_never_forwarded_but_other_credentials_are() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let (gw, token) = setup(&wx, &echo, "").await;
    for path in ["/req/a", "/opt/a", "/pub/a"] {
        assert_eq!(gw.call("GET", path, Some(&token)).await.status, 200);
        let rec = echo.last();
        assert!(
            rec.header("authorization").is_none(),
            "{path} forwarded the gateway token"
        );
        assert!(
            !rec.dump().contains(&token),
            "{path}: token reached the upstream"
        );
    }
    for path in ["/opt/b", "/pub/b"] {
        for cred in ["Basic dXNlcjpwYXNz", "Bearer legacy-api-token-123"] {
            let r = send(client().get(gw.url(path)).header("authorization", cred)).await;
            assert_eq!(r.status, 200, "{path} with {cred}: {}", r.text());
            let rec = echo.last();
            assert_eq!(rec.header_all("authorization"), vec![cred], "{path}");
            assert!(
                rec.header("x-wx-openid").is_none(),
                "{path}: a foreign credential got an identity"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_reject_blocks_required_routes_only() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    wx.add_code("c2", "o-real", Some("u-real"));
    wx.add_code("lonely", "o-unmapped", None);
    let gw = GatewayBuilder::new(&wx)
        .file("accounts.toml", "[openid]\n\"o-real\" = \"acct-1\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"\nunbound = \"reject\"")
        .route("/req/", &echo.url, "required")
        .route("/opt/", &echo.url, "optional")
        .start()
        .await;
    let r = gw.login("lonely").await;
    assert_eq!(
        r.status,
        200,
        "an unbound user must still log in: {}",
        r.text()
    );
    assert_eq!(r.json()["account_id"], serde_json::Value::Null);
    let lonely = r.json()["token"].as_str().unwrap().to_string();
    let before = echo.count();
    assert_error(
        &gw.call("GET", "/req/x", Some(&lonely)).await,
        403,
        "account_not_bound",
    );
    assert_eq!(
        echo.count(),
        before,
        "an unbound session reached a required upstream"
    );
    assert_eq!(gw.call("GET", "/opt/x", Some(&lonely)).await.status, 200);
    let rec = echo.last();
    assert_eq!(rec.header("x-wx-openid"), Some("o-unmapped"));
    assert!(rec.header("x-wx-account-id").is_none(), "{rec:?}");
    assert_eq!(
        gw.call("GET", "/wx/session", Some(&lonely)).await.status,
        200
    );
    let mapped = gw.token("c2").await;
    assert_eq!(gw.call("GET", "/req/x", Some(&mapped)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-account-id"), Some("acct-1"));
}
