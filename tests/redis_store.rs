//! The Redis store with a real `redis-server` (free port, no persistence): two gateway
//! instances behave as one (login on A, use on B with its risk rank; logout on B is immediate on B and reaches
//! A within 1 s), a scan of every key and value finds no secret or personal data in clear,
//! Redis stopped mid-traffic gives 503 `store_unavailable` (never 401, never a hang) and
//! `/readyz` 503, then recovery on restart without restarting the gateway; bindings
//! outlive a gateway restart. Skips without redis-server unless `CI` is set.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisServer, assert_dump_clean, encryption_key};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, send};

fn builder(wx: &FakeWechat, echo: &Echo, redis: &RedisServer, key: &str) -> GatewayBuilder {
    GatewayBuilder::new(wx)
        .file("accounts.toml", "[phone]\n\"13800138000\" = \"acct-redis\"\n")
        .section("[accounts]\nfile = \"accounts.toml\"")
        .section(&format!(
            "[session]\nstore = \"redis\"\nttl = \"2h\"\n\n[redis]\nurl = \"{}\"\nencryption_key = \"{key}\"",
            redis.url()
        ))
        .route("/req/", &echo.url, "required")
}

async fn login(wx: &FakeWechat, gw: &Gateway, openid: &str) -> String {
    let code = format!("login-{}", common::random_hex(6));
    wx.add_code(&code, openid, Some(&format!("u-{openid}")));
    gw.token(&code).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_logout() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = builder(&wx, &echo, &redis, &encryption_key()).section("[risk]\nenabled = true");
    let (a, bb) = (b.clone().start().await, b.start().await);
    wx.set_risk_rank("o-shared", 2);
    let token = login(&wx, &a, "o-shared").await;
    let t_login = Instant::now();
    assert_eq!(a.call("GET", "/req/on-a", Some(&token)).await.status, 200);
    assert_eq!(bb.call("GET", "/req/on-b", Some(&token)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-openid"), Some("o-shared"));
    // the login's risk rank travels with the session through Redis
    assert_eq!(echo.last().header("x-wx-risk-rank"), Some("2"));
    assert_eq!(bb.session(&token).await.json()["openid"], "o-shared");

    let r = bb.call("POST", "/wx/logout", Some(&token)).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let t0 = Instant::now();
    assert_error(&bb.session(&token).await, 401, "unauthenticated");
    loop {
        let r = a.call("GET", "/req/on-a", Some(&token)).await;
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            t0.elapsed() < Duration::from_millis(1200),
            "logout on B still not seen on A after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    println!(
        "logout on B reached A after {:?} ({:?} after A cached the session at login)",
        t0.elapsed(),
        t_login.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_dump_holds_nothing_in_clear() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = builder(&wx, &echo, &redis, &encryption_key()).start().await;
    let mut secrets = vec![wx.secret.clone()];
    let mut tokens = Vec::new();
    for (i, openid) in ["o-dump-1", "o-dump-2"].into_iter().enumerate() {
        let key = wx.add_code(&format!("c{i}"), openid, Some(&format!("u-{openid}")));
        secrets.push(key.trim_end_matches('=').to_string());
        secrets.push(openid.to_string());
        tokens.push(gw.token(&format!("c{i}")).await);
    }
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&tokens[0], "p").await.status, 200);
    for t in &tokens {
        secrets.push(t.clone());
        secrets.push(t[4..].to_string());
    }
    secrets.extend(["13800138000".into(), "8613800138000".into()]);
    let issued = wx.issued_tokens();
    assert_eq!(issued.len(), 1);
    secrets.extend(issued.iter().map(|t| t["ACCESSTOKEN-".len()..].to_string()));

    let dump = redis.dump();
    let keys: Vec<&str> = dump.iter().map(|(k, _)| k.as_str()).collect();
    println!("redis keys: {keys:?}");
    for kind in ["session:", "binding:", "token:"] {
        let n = keys
            .iter()
            .filter(|k| k.starts_with(&format!("wxgate:{kind}")))
            .count();
        assert!(n >= 1, "no wxgate:{kind} key in {keys:?}");
    }
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("wxgate:session:"))
            .count(),
        2
    );
    assert!(keys.iter().all(|k| k.starts_with("wxgate:")), "{keys:?}");
    assert_dump_clean(&dump, &secrets);
    let session_key = keys
        .iter()
        .find(|k| k.starts_with("wxgate:session:"))
        .unwrap();
    let ttl: i64 = redis.cmd(&["TTL", session_key]).text().parse().unwrap();
    assert!(
        (7000..=7200).contains(&ttl),
        "session TTL {ttl}, want the 2h ttl"
    );
}

/// Redis down: every store-dependent request is 200 (local cache) or a quick 503
/// `store_unavailable`, never 401 nor a hang; `/readyz` 503; back on restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_503_and_recovers_without_restart() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = builder(&wx, &echo, &redis, &encryption_key()).start().await;
    let token = login(&wx, &gw, "o-outage").await;
    assert_eq!(
        gw.call("GET", "/req/before", Some(&token)).await.status,
        200
    );

    redis.stop().await;
    let t0 = Instant::now();
    let mut saw_503 = false;
    while t0.elapsed() < Duration::from_secs(3) {
        for (m, p) in [("GET", "/req/during"), ("GET", "/wx/session")] {
            let started = Instant::now();
            let r = gw.call(m, p, Some(&token)).await;
            let took = started.elapsed();
            assert!(took < Duration::from_millis(2500), "{p} took {took:?}");
            if r.status != 200 {
                assert_error(&r, 503, "store_unavailable");
                saw_503 = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_503, "3 s without Redis and still no 503");
    wx.add_code("during", "o-new", None);
    assert_error(&gw.login("during").await, 503, "store_unavailable");
    assert_error(
        &gw.call("POST", "/wx/logout", Some(&token)).await,
        503,
        "store_unavailable",
    );
    let r = send(client().get(gw.admin_url("/readyz"))).await;
    assert_eq!(r.status, 503, "{}", r.text());

    redis.restart().await;
    let back = common::wait_until_async(Duration::from_secs(10), || async {
        send(client().get(gw.admin_url("/readyz"))).await.status == 200
    })
    .await;
    assert!(back, "/readyz never recovered");
    let token = login(&wx, &gw, "o-after").await;
    assert_eq!(gw.call("GET", "/req/after", Some(&token)).await.status, 200);
    assert_eq!(echo.last().header("x-wx-openid"), Some("o-after"));
    let m = gw.metrics().await;
    assert!(
        common::metric_sum(&m, "wxgate_store_errors_total", "") >= 1.0,
        "{m}"
    );
    assert!(
        m.contains("wxgate_store_request_duration_seconds_bucket"),
        "no store histogram"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_outlive_a_gateway_restart_and_deletes_reach_every_replica() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = builder(&wx, &echo, &redis, &encryption_key());
    let mut first = b.clone().start().await;
    let token = login(&wx, &first, "o-keep").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(first.phone(&token, "p").await.status, 200);
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).await.is_some());

    let (a, bb) = (b.clone().start().await, b.start().await);
    let fresh = login(&wx, &a, "o-keep").await;
    let s = a.session(&fresh).await.json();
    assert_eq!(s["account_id"], "acct-redis", "{s}");
    assert_eq!(s["phone_number"], "+8613800138000", "{s}");
    assert_eq!(wx.calls("/wxa/business/getuserphonenumber"), 1);
    let path = format!("/bindings/{}/o-keep", wx.appid);
    assert_eq!(send(client().get(a.admin_url(&path))).await.status, 200);

    let r = send(client().delete(bb.admin_url(&path))).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let gone = common::wait_until_async(Duration::from_millis(1200), || async {
        send(client().get(a.admin_url(&path))).await.status == 404
    })
    .await;
    assert!(gone, "the DELETE on B was not seen on A within 1 s");
}
