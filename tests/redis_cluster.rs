//! Redis Cluster mode: a local cluster of three masters on free ports (no replicas), two
//! gateway instances with `[redis] cluster = true` and seed nodes; sessions, bindings and
//! the access_token are shared, logout propagates, and no node holds a secret in clear.
//! Skips without redis-server unless `CI` is set.

mod common;

use std::time::{Duration, Instant};

use common::redis::{RedisCluster, assert_dump_clean, encryption_key};
use common::{Echo, FakeWechat, GatewayBuilder, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_state_through_a_cluster() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let b = GatewayBuilder::new(&wx)
        .file(
            "accounts.toml",
            "[phone]\n\"13800138000\" = \"acct-cluster\"\n",
        )
        .section("[accounts]\nfile = \"accounts.toml\"")
        .section(&cluster.sections(&encryption_key()))
        .route("/req/", &echo.url, "required");
    let (a, bb) = (b.clone().start().await, b.start().await);
    let mut secrets = vec![wx.secret.clone(), "13800138000".to_string()];
    let mut tokens = Vec::new();
    for i in 0..6 {
        let openid = format!("o-cluster-{i}");
        let key = wx.add_code(&format!("c{i}"), &openid, None);
        secrets.extend([openid, key.trim_end_matches('=').to_string()]);
        let token = a.token(&format!("c{i}")).await;
        assert_eq!(
            bb.call("GET", "/req/x", Some(&token)).await.status,
            200,
            "token {i} on B"
        );
        tokens.push(token);
    }
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(bb.phone(&tokens[0], "p").await.status, 200);
    wx.add_phone_code("p2", "13800138000", "86");
    assert_eq!(a.phone(&tokens[1], "p2").await.status, 200);
    assert_eq!(
        wx.calls("/cgi-bin/stable_token"),
        1,
        "replicas fetched separate tokens"
    );
    // B bound o-cluster-0; A may have cached "no binding" for at most 1 s
    let mut n = 0;
    let bound = common::wait_until_async(Duration::from_millis(1500), || {
        n += 1;
        let code = format!("again-{n}");
        wx.add_code(&code, "o-cluster-0", None);
        let a = &a;
        async move { a.login(&code).await.json()["account_id"] == "acct-cluster" }
    })
    .await;
    assert!(bound, "B's binding never reached A");

    let dump = cluster.dump();
    let keys: Vec<&String> = dump.iter().map(|(k, _)| k).collect();
    let holders = cluster
        .nodes
        .iter()
        .filter(|n| !n.dump().is_empty())
        .count();
    println!("cluster keys: {} over {holders} node(s)", keys.len());
    assert!(
        keys.len() >= 9,
        "sessions, binding and token expected: {keys:?}"
    );
    assert!(
        holders >= 2,
        "every key on one node: is the cluster really used?"
    );
    for t in &tokens {
        secrets.extend([t.clone(), t[4..].to_string()]);
    }
    secrets.extend(
        wx.issued_tokens()
            .iter()
            .map(|t| t["ACCESSTOKEN-".len()..].to_string()),
    );
    assert_dump_clean(&dump, &secrets);

    assert_eq!(
        bb.call("POST", "/wx/logout", Some(&tokens[2])).await.status,
        204
    );
    assert_error(&bb.session(&tokens[2]).await, 401, "unauthenticated");
    let t0 = Instant::now();
    let dead = common::wait_until_async(Duration::from_millis(1200), || async {
        a.session(&tokens[2]).await.status == 401
    })
    .await;
    assert!(dead, "logout on B not seen on A after {:?}", t0.elapsed());
}
