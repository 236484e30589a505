//! Redis restarted under two running replicas (stopped, started again on the same port,
//! empty): the first request on each replica once Redis answers again succeeds — on one
//! that kept being asked during the outage (its reconnects failed) and on one that sat idle
//! (its connection died unnoticed). Three rounds. Skips without redis-server unless `CI` is set.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisCluster, RedisServer, encryption_key, redis_sections};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error};

/// Log in a new user on `gw`: the answer and how long it took.
async fn fresh_login(wx: &FakeWechat, gw: &Gateway, openid: &str) -> (common::Resp, Duration) {
    let code = format!("login-{}", common::random_hex(6));
    wx.add_code(&code, openid, None);
    let started = Instant::now();
    let r = gw.login(&code).await;
    (r, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_on_every_replica_after_a_redis_restart_succeeds() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .section(&redis_sections(&redis.url(), &encryption_key()));
    let (busy, idle) = (b.clone().start().await, b.start().await);
    for round in 0..3 {
        for (name, gw) in [("busy", &busy), ("idle", &idle)] {
            let (r, _) = fresh_login(&wx, gw, &format!("o-{name}-{round}")).await;
            assert_eq!(r.status, 200, "round {round}: {name} before: {}", r.text());
            let token = r.json()["token"].as_str().unwrap().to_string();
            assert_eq!(gw.call("GET", "/req/x", Some(&token)).await.status, 200);
        }

        redis.stop().await;
        for i in 0..3 {
            let (r, _) = fresh_login(&wx, &busy, &format!("o-down-{round}-{i}")).await;
            assert_error(&r, 503, "store_unavailable");
        }
        // the outage lasts on after the last request: the reconnect that request started
        // gives up (one retry, at most 500 ms apart) before Redis is back
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.restart().await;

        let mut firsts = Vec::new();
        for (name, gw) in [("busy", &busy), ("idle", &idle)] {
            let openid = format!("o-{name}-after-{round}");
            let (r, took) = fresh_login(&wx, gw, &openid).await;
            println!(
                "round {round}: first request on the {name} replica: {} in {took:?}",
                r.status
            );
            firsts.push((name, gw, openid, r, took));
        }
        for (name, gw, openid, r, took) in firsts {
            assert_eq!(
                r.status,
                200,
                "round {round}: the first request on the {name} replica after Redis came back: {}",
                r.text()
            );
            assert!(took < Duration::from_secs(2), "{name} took {took:?}");
            let token = r.json()["token"].as_str().unwrap().to_string();
            assert_eq!(gw.call("GET", "/req/x", Some(&token)).await.status, 200);
            assert_eq!(echo.last().header("x-wx-openid"), Some(openid.as_str()));
        }
    }
}

/// The same through Redis Cluster: every node restarted (the cluster keeps its layout in
/// `nodes.conf`, the data is gone); once the cluster is ok again, the first request on each
/// replica succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_on_every_replica_after_a_cluster_restart_succeeds() {
    let Some(mut cluster) = RedisCluster::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .section(&cluster.sections(&encryption_key()));
    let (busy, idle) = (b.clone().start().await, b.start().await);
    for (name, gw) in [("busy", &busy), ("idle", &idle)] {
        let (r, _) = fresh_login(&wx, gw, &format!("o-{name}")).await;
        assert_eq!(r.status, 200, "{name} before: {}", r.text());
    }

    for node in &mut cluster.nodes {
        node.stop().await;
    }
    let (r, _) = fresh_login(&wx, &busy, "o-down").await;
    assert_error(&r, 503, "store_unavailable");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for node in &mut cluster.nodes {
        node.restart().await;
    }
    let ok = common::wait_until(Duration::from_secs(15), || {
        cluster.nodes.iter().all(|n| {
            common::redis::command(n.port, &["CLUSTER", "INFO"])
                .is_ok_and(|r| r.text().contains("cluster_state:ok"))
        })
    })
    .await;
    assert!(ok, "the restarted cluster never reached cluster_state:ok");

    let mut firsts = Vec::new();
    for (name, gw) in [("busy", &busy), ("idle", &idle)] {
        let (r, took) = fresh_login(&wx, gw, &format!("o-{name}-after")).await;
        println!(
            "cluster: first request on the {name} replica: {} in {took:?}",
            r.status
        );
        firsts.push((name, r, took));
    }
    for (name, r, took) in firsts {
        assert_eq!(
            r.status,
            200,
            "the first request on the {name} replica: {}",
            r.text()
        );
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
    }
}
