//! A user's sessions (CONTRACT section 11): `[session] max_per_user` ends the oldest session
//! when a login exceeds it (memory store, and across two Redis replicas: 401 at once on
//! the replica that logged in, within a second on the other); `GET /sessions/{appid}/
//! {openid}` lists them oldest first without any token or hash; `DELETE` ends every one
//! here at once and on the other replica within a second; both are admin data endpoints
//! and both evictions and revocations are in the audit log.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisServer, encryption_key};
use common::{
    Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, client_from, send, wait_until,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

async fn login(wx: &FakeWechat, gw: &Gateway, openid: &str) -> String {
    let code = format!("login-{}", common::random_hex(6));
    wx.add_code(&code, openid, None);
    gw.token(&code).await
}

async fn status(gw: &Gateway, token: &str) -> u16 {
    gw.call("GET", "/req/x", Some(token)).await.status
}

async fn listed(gw: &Gateway, appid: &str, openid: &str) -> (Value, String) {
    let r = send(client().get(gw.admin_url(&format!("/sessions/{appid}/{openid}")))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (r.json(), r.text())
}

async fn revoke(gw: &Gateway, appid: &str, openid: &str) -> u16 {
    let url = gw.admin_url(&format!("/sessions/{appid}/{openid}"));
    send(client().delete(url)).await.status
}

fn audit_events(gw: &Gateway, event: &str) -> usize {
    gw.logs()
        .lines()
        .filter(|l| l.contains("\"target\":\"wxgate::audit\""))
        .filter(|l| l.contains(&format!("\"event\":\"{event}\"")))
        .count()
}

/// No token, and no hash of one, in `text`.
fn assert_no_token(text: &str, tokens: &[String]) {
    for t in tokens {
        assert!(!text.contains(t.as_str()), "a token in {text}");
        let hash = hex::encode(Sha256::digest(t.as_bytes()));
        assert!(!text.contains(&hash), "a token hash in {text}");
    }
}

fn memory_gateway(wx: &FakeWechat, echo: &Echo, cap: u32) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .section(&format!("[session]\nmax_per_user = {cap}"))
        .route("/req/", &echo.url, "required")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_ends_the_oldest_session_and_the_list_shows_the_rest() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = memory_gateway(&wx, &echo, 2).start().await;
    let appid = wx.appid.clone();
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(login(&wx, &gw, "o-capped").await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = login(&wx, &gw, "o-other").await;
    assert_eq!(
        status(&gw, &tokens[0]).await,
        401,
        "the oldest session lives on"
    );
    assert_eq!(status(&gw, &tokens[1]).await, 200);
    assert_eq!(status(&gw, &tokens[2]).await, 200);
    assert_eq!(
        status(&gw, &other).await,
        200,
        "another user's session ended"
    );

    let (list, text) = listed(&gw, &appid, "o-capped").await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{text}");
    let times =
        |i: usize, k: &str| common::parse_rfc3339_utc(sessions[i][k].as_str().unwrap()).unwrap();
    assert!(
        times(0, "created_at") <= times(1, "created_at"),
        "not oldest first: {text}"
    );
    assert!(times(0, "expires_at") > common::now_secs() + 3600, "{text}");
    for s in sessions {
        assert_eq!(s.as_object().unwrap().len(), 2, "{text}");
    }
    assert_no_token(&text, &tokens);
    assert!(
        wait_until(Duration::from_secs(2), || audit_events(
            &gw,
            "session_evicted"
        ) == 1)
        .await,
        "{}",
        gw.logs()
    );

    // an unknown user has none; DELETE ends every session of the user, and only theirs
    let (list, _) = listed(&gw, &appid, "o-nobody").await;
    assert_eq!(list["sessions"], Value::Array(vec![]));
    assert_eq!(revoke(&gw, &appid, "o-capped").await, 204);
    for t in &tokens {
        assert_eq!(status(&gw, t).await, 401);
    }
    assert_eq!(status(&gw, &other).await, 200);
    assert_eq!(
        listed(&gw, &appid, "o-capped").await.0["sessions"],
        Value::Array(vec![])
    );
    assert_eq!(
        revoke(&gw, &appid, "o-capped").await,
        204,
        "nothing left is still 204"
    );
    assert!(
        wait_until(Duration::from_secs(2), || audit_events(
            &gw,
            "sessions_revoked"
        ) == 2)
        .await,
        "{}",
        gw.logs()
    );

    // a data endpoint: another peer is refused, and a bad path is 404
    let r = send(client_from("127.0.0.2").get(gw.admin_url(&format!("/sessions/{appid}/o-other"))))
        .await;
    assert_error(&r, 403, "forbidden");
    let r = send(
        client()
            .delete(gw.admin_url(&format!("/sessions/{appid}/o-other")))
            .header("x", "y"),
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(status(&gw, &other).await, 401);
    let r = send(client().get(gw.admin_url("/sessions/only-appid"))).await;
    assert_error(&r, 404, "not_found");
    let r = send(client().post(gw.admin_url(&format!("/sessions/{appid}/o-other")))).await;
    assert_error(&r, 405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cap_every_session_lives() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = memory_gateway(&wx, &echo, 0).start().await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(login(&wx, &gw, "o-many").await);
    }
    for t in &tokens {
        assert_eq!(status(&gw, t).await, 200);
    }
    let (list, _) = listed(&gw, &wx.appid, "o-many").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 5);
}

/// Poll `token` on `gw` until it is 401; fails past 1.2 s.
async fn dead_within_a_second(gw: &Gateway, token: &str, what: &str) {
    let t0 = Instant::now();
    loop {
        let s = status(gw, token).await;
        if s == 401 {
            return;
        }
        assert_eq!(s, 200);
        assert!(
            t0.elapsed() < Duration::from_millis(1200),
            "{what}: still alive after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_replicas_share_the_cap_and_the_revocation() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = GatewayBuilder::new(&wx)
        .section(&format!(
            "[session]\nstore = \"redis\"\nmax_per_user = 2\n\n[redis]\nurl = \"{}\"\nencryption_key = \"{}\"",
            redis.url(),
            encryption_key()
        ))
        .route("/req/", &echo.url, "required");
    let (a, bb) = (b.clone().start().await, b.start().await);
    let appid = wx.appid.clone();

    let first = login(&wx, &a, "o-redis").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = login(&wx, &bb, "o-redis").await;
    // both replicas know both sessions
    assert_eq!(status(&bb, &first).await, 200);
    assert_eq!(status(&a, &second).await, 200);
    let (list, text) = listed(&a, &appid, "o-redis").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{text}");

    // the third login, on B, ends the oldest (made on A): at once on B, within 1 s on A
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = login(&wx, &bb, "o-redis").await;
    assert_eq!(
        status(&bb, &first).await,
        401,
        "the evicted token lives on B"
    );
    dead_within_a_second(&a, &first, "evicted token on A").await;
    for t in [&second, &third] {
        assert_eq!(status(&a, t).await, 200);
        assert_eq!(status(&bb, t).await, 200);
    }
    let (list, text) = listed(&a, &appid, "o-redis").await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2, "{text}");
    assert_no_token(&text, &[first.clone(), second.clone(), third.clone()]);

    // revoke everywhere from B: at once on B, within 1 s on A
    assert_eq!(revoke(&bb, &appid, "o-redis").await, 204);
    for t in [&second, &third] {
        assert_eq!(status(&bb, t).await, 401);
    }
    for t in [&second, &third] {
        dead_within_a_second(&a, t, "revoked token on A").await;
    }
    assert_eq!(
        listed(&a, &appid, "o-redis").await.0["sessions"],
        Value::Array(vec![])
    );
}
