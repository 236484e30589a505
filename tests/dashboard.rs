//! The Grafana dashboard the deploy ships (`deploy/k8s/components/monitoring/
//! wxgate-dashboard.json`) queries only metrics a running gateway exports: every
//! `wxgate_*` name in its queries shows up in `/metrics` after the traffic that makes it
//! (logins, a phone, a WeChat error, proxied calls; the store's on a Redis gateway, whose
//! Redis is stopped once so that its errors count too). Skips without redis-server
//! unless `CI` is set.

mod common;

use std::collections::BTreeSet;

use common::redis::{RedisServer, encryption_key, redis_sections};
use common::{Echo, FakeWechat, Gateway, GatewayBuilder};
use serde_json::Value;

const DASHBOARD: &str = include_str!("../deploy/k8s/components/monitoring/wxgate-dashboard.json");

/// Every `wxgate_…` name the dashboard's queries use.
fn queried() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expr");
            let mut rest = expr;
            while let Some(at) = rest.find("wxgate_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

/// The sample names of a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

async fn traffic(wx: &FakeWechat, gw: &Gateway, tag: &str) {
    wx.add_code(&format!("{tag}-ok"), &format!("o-{tag}"), None);
    let token = gw.token(&format!("{tag}-ok")).await;
    assert_eq!(gw.call("GET", "/req/a", Some(&token)).await.status, 200);
    wx.add_phone_code(&format!("{tag}-phone"), "13800138000", "86");
    assert_eq!(gw.phone(&token, &format!("{tag}-phone")).await.status, 200);
    wx.add_error_code(&format!("{tag}-bad"), 40029);
    assert_eq!(gw.login(&format!("{tag}-bad")).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let memory = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .start()
        .await;
    let shared = GatewayBuilder::new(&wx)
        .route("/req/", &echo.url, "required")
        .section(&redis_sections(&redis.url(), &encryption_key()))
        .start()
        .await;
    traffic(&wx, &memory, "mem").await;
    traffic(&wx, &shared, "red").await;
    redis.stop().await;
    wx.add_code("red-down", "o-down", None);
    assert_eq!(shared.login("red-down").await.status, 503);

    let mut have = exported(&memory.metrics().await);
    have.extend(exported(&shared.metrics().await));
    let wanted = queried();
    assert!(wanted.len() >= 9, "{wanted:?}");
    let missing: Vec<&String> = wanted.iter().filter(|m| !have.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, which no gateway exports; exported: {have:?}"
    );
}
