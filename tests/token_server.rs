//! The central access_token endpoint on the admin listener: off by default (404), the
//! `[token_server] allow` list (default loopback only; another peer gets 403 `forbidden`),
//! `GET` sharing the gateway's own cached token, and `POST` with `failed_token`:
//! compare-then-expire, so 100 services reporting the same dead token cause one fetch.

mod common;

use std::time::Duration;

use common::{
    FakeWechat, Gateway, GatewayBuilder, assert_error, client, client_from, metric_sum, send,
};
use serde_json::{Value, json};

const STABLE: &str = "/cgi-bin/stable_token";

async fn enabled(wx: &FakeWechat, extra: &str) -> Gateway {
    GatewayBuilder::new(wx)
        .section(&format!("[token_server]\nenabled = true\n{extra}"))
        .start()
        .await
}

async fn get_token(gw: &Gateway, appid: &str) -> common::Resp {
    let url = gw.admin_url(&format!("/wechat/access_token?appid={appid}"));
    send(client().get(url)).await
}

async fn post_failed(gw: &Gateway, appid: &str, failed: &str) -> common::Resp {
    let body = json!({"appid": appid, "failed_token": failed});
    send(
        client()
            .post(gw.admin_url("/wechat/access_token"))
            .json(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_server_is_off_by_default() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx).start().await;
    assert_error(&get_token(&gw, &wx.appid).await, 404, "not_found");
    assert_error(&post_failed(&gw, &wx.appid, "x").await, 404, "not_found");
    assert_eq!(wx.calls(STABLE), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_hands_out_the_shared_cached_token() {
    let wx = FakeWechat::start().await;
    let gw = enabled(&wx, "").await;
    let r = get_token(&gw, &wx.appid).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    let current = wx.current_token(&wx.appid).unwrap();
    assert_eq!(b["access_token"], current.as_str());
    let left = b["expires_in"].as_u64().expect("expires_in is an integer");
    assert!((7000..=7200).contains(&left), "expires_in {left}");
    for _ in 0..5 {
        assert_eq!(
            get_token(&gw, &wx.appid).await.json()["access_token"],
            current
        );
    }
    // the phone flow uses the very same cached token
    wx.add_code("c", "o-ts", None);
    let token = gw.token("c").await;
    wx.add_phone_code("p", "13800138000", "86");
    assert_eq!(gw.phone(&token, "p").await.status, 200);
    assert_eq!(wx.calls(STABLE), 1, "the token was fetched more than once");
    // an unknown app is refused; the endpoint is not on the public listener
    let r = get_token(&gw, "wxffffffffffffffff").await;
    assert_error(&r, 400, "invalid_request");
    let url = gw.url(&format!("/wechat/access_token?appid={}", wx.appid));
    let r = send(client().get(url)).await;
    assert_error(&r, 404, "not_found");
    assert!(
        !r.text().contains(&current),
        "public listener leaked the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_outside_the_allow_list_get_403() {
    let wx = FakeWechat::start().await;
    let gw = enabled(&wx, "").await;
    // default allow is loopback 127.0.0.1/32 and ::1/128: 127.0.0.2 is outside
    let c = client_from("127.0.0.2");
    let url = gw.admin_url(&format!("/wechat/access_token?appid={}", wx.appid));
    let r = send(c.get(&url)).await;
    let err = assert_error(&r, 403, "forbidden");
    assert!(!r.text().contains("ACCESSTOKEN"), "{err}");
    let body = json!({"appid": wx.appid, "failed_token": "x"});
    let r = send(c.post(gw.admin_url("/wechat/access_token")).json(&body)).await;
    assert_error(&r, 403, "forbidden");
    assert_eq!(
        get_token(&gw, &wx.appid).await.status,
        200,
        "127.0.0.1 allowed"
    );

    let narrow = enabled(&wx, "allow = [\"10.0.0.0/8\"]").await;
    assert_error(&get_token(&narrow, &wx.appid).await, 403, "forbidden");
    // `[token_server] allow` only narrows `[admin] allow`: widen both
    let wide = GatewayBuilder::new(&wx)
        .admin("allow", "[\"127.0.0.0/8\"]")
        .section("[token_server]\nenabled = true\nallow = [\"127.0.0.0/8\"]")
        .start()
        .await;
    assert_eq!(
        send(c.get(wide.admin_url(&format!("/wechat/access_token?appid={}", wx.appid))))
            .await
            .status,
        200
    );
    assert_eq!(wx.calls(STABLE), 2, "refused peers caused fetches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_failed_token_reports_cause_one_refresh() {
    let wx = FakeWechat::start().await;
    let gw = enabled(&wx, "").await;
    let first = get_token(&gw, &wx.appid).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    wx.invalidate_token(&wx.appid);
    wx.set_path_delay(STABLE, Duration::from_millis(100));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (url, appid, first) = (
            gw.admin_url("/wechat/access_token"),
            wx.appid.clone(),
            first.clone(),
        );
        set.spawn(async move {
            let body = json!({"appid": appid, "failed_token": first});
            send(client().post(url).json(&body)).await
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.json()["access_token"].as_str().unwrap().to_string());
    }
    let second = wx.current_token(&wx.appid).unwrap();
    println!(
        "100 concurrent failed_token reports: {} stable_token call(s) after the first",
        wx.calls(STABLE) - 1
    );
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![second.clone()]);
    assert_ne!(first, second);
    assert_eq!(wx.calls(STABLE), 2, "100 reports, more than one refresh");

    // a stale or unknown failed_token expires nothing
    let r = post_failed(&gw, &wx.appid, &first).await;
    assert_eq!(r.json()["access_token"], second.as_str());
    let r = post_failed(&gw, &wx.appid, "ACCESSTOKEN-bogus").await;
    assert_eq!(r.json()["access_token"], second.as_str());
    assert_eq!(
        wx.calls(STABLE),
        2,
        "compare-then-expire expired a token that was not current"
    );
    let m = gw.metrics().await;
    let expired = metric_sum(&m, "wxgate_access_token_events_total", "event=\"expired\"");
    assert_eq!(expired, 1.0, "{m}");
    // a body without appid is refused
    let r = send(
        client()
            .post(gw.admin_url("/wechat/access_token"))
            .json(&json!({"failed_token": "x"})),
    )
    .await;
    let v: Value = r.json();
    assert_eq!(r.status, 400, "{v}");
}
