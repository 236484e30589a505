//! The open-API relay on the admin listener (`ANY /wechat/api/{path}`): off by default,
//! refused to peers outside `[admin] allow`, exact allow-listed paths only, the app's
//! access_token added and the caller's dropped, no caller header passed on, WeChat's answer
//! back unchanged (PNG byte for byte, errcode answers as HTTP 200), bodies over
//! `max_body_bytes` refused, and a token refused mid-traffic cured by one refresh.

mod common;

use std::sync::Arc;

use common::{
    FakeWechat, Gateway, GatewayBuilder, assert_error, client, client_from, metric_sum, raw, send,
};
use serde_json::{Value, json};

const STABLE: &str = "/cgi-bin/stable_token";
const QR: &str = "/wxa/getwxacodeunlimit";
const SEND: &str = "/cgi-bin/message/subscribe/send";

async fn relay_on(wx: &FakeWechat, extra: &str) -> Gateway {
    GatewayBuilder::new(wx)
        .section(&format!("[relay]\nenabled = true\n{extra}"))
        .start()
        .await
}

fn relay_url(gw: &Gateway, path_and_query: &str) -> String {
    gw.admin_url(&format!("/wechat/api/{path_and_query}"))
}

async fn post(gw: &Gateway, path_and_query: &str, body: &Value) -> common::Resp {
    send(client().post(relay_url(gw, path_and_query)).json(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_is_off_by_default_and_refused_to_other_peers() {
    let wx = FakeWechat::start().await;
    let off = GatewayBuilder::new(&wx).start().await;
    let body = json!({"scene": "a=1"});
    let r = post(&off, "wxa/getwxacodeunlimit", &body).await;
    assert_error(&r, 404, "not_found");

    let gw = relay_on(&wx, "").await;
    // 127.0.0.2 is outside the default `[admin] allow` (loopback /32 and ::1)
    let c = client_from("127.0.0.2");
    for path in ["wxa/getwxacodeunlimit", "cgi-bin/wxaapp/setting"] {
        let r = send(c.post(relay_url(&gw, path)).json(&body)).await;
        assert_error(&r, 403, "forbidden");
    }
    assert_eq!(wx.calls(QR), 0, "a refused peer reached WeChat");
    assert_eq!(wx.calls(STABLE), 0);
    // the relay is not on the public listener
    let r = send(
        client()
            .post(gw.url("/wechat/api/wxa/getwxacodeunlimit"))
            .json(&body),
    )
    .await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(wx.calls(QR), 0);

    // an admin token guards it like every data endpoint
    let guarded = GatewayBuilder::new(&wx)
        .admin("token", "\"admin-secret-123\"")
        .section("[relay]\nenabled = true")
        .start()
        .await;
    let r = post(&guarded, "wxa/getwxacodeunlimit", &body).await;
    assert_error(&r, 403, "forbidden");
    let r = send(
        client()
            .post(relay_url(&guarded, "wxa/getwxacodeunlimit"))
            .bearer_auth("admin-secret-123")
            .json(&body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(wx.calls(QR), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_code_comes_back_byte_for_byte_with_the_apps_token_only() {
    let wx = FakeWechat::start().await;
    let gw = relay_on(&wx, "").await;
    let url = relay_url(
        &gw,
        &format!(
            "wxa/getwxacodeunlimit?appid={}&access_token=CALLER-TOKEN&env_version=trial",
            wx.appid
        ),
    );
    let resp = client()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("cookie", "sid=legacy-cookie")
        .header("x-legacy-secret", "do-not-forward")
        .header("user-agent", "legacy-service/1.0")
        .body(r#"{"scene":"order=42","page":"pages/index"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "image/png"
    );
    let bytes = resp.bytes().await.unwrap();
    let served = wx.pngs();
    assert_eq!(served.len(), 1);
    assert!(bytes.len() > 40_000, "{} bytes", bytes.len());
    assert!(bytes[..] == served[0][..], "the PNG changed on the way");

    // what WeChat received: the app's token, the caller's query, body and content type
    let query = wx
        .queries()
        .into_iter()
        .rfind(|q| q.contains("env_version"))
        .unwrap();
    let token = wx.current_token(&wx.appid).unwrap();
    let pairs = common::fake_wechat::parse_query(&query);
    assert_eq!(pairs.get("access_token"), Some(&token), "{query}");
    assert_eq!(pairs.get("env_version").map(String::as_str), Some("trial"));
    assert!(
        !query.contains("CALLER-TOKEN") && !query.contains("appid"),
        "{query}"
    );
    assert_eq!(
        wx.raw_bodies(QR)[0],
        br#"{"scene":"order=42","page":"pages/index"}"#.to_vec()
    );
    let headers = &wx.request_headers(QR)[0];
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    for name in ["cookie", "x-legacy-secret", "user-agent", "authorization"] {
        assert!(headers.get(name).is_none(), "{name} reached WeChat");
    }
    assert_eq!(wx.calls(STABLE), 1);

    // an errcode answer stays HTTP 200 with WeChat's body and content type
    let bad_args = post(&gw, "wxa/getwxacodeunlimit", &json!({"page": "x"})).await;
    assert_eq!(bad_args.status, 200);
    assert_eq!(
        bad_args.header("content-type").as_deref(),
        Some("text/plain")
    );
    assert_eq!(bad_args.json()["errcode"], 40097, "{}", bad_args.text());
    let r = post(
        &gw,
        "cgi-bin/message/subscribe/send?access_token=CALLER-TOKEN",
        &json!({}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["errcode"], 40003);
    for r in [&bad_args, &r] {
        assert!(!r.dump().contains(&token) && !r.dump().contains("CALLER-TOKEN"));
    }
    let m = gw.metrics().await;
    let counted = |path: &str, errcode: &str| {
        metric_sum(
            &m,
            "wxgate_relay_calls_total",
            &format!("path=\"{path}\",errcode=\"{errcode}\""),
        )
    };
    assert_eq!(counted("wxa/getwxacodeunlimit", "0"), 1.0, "{m}");
    assert_eq!(counted("wxa/getwxacodeunlimit", "40097"), 1.0, "{m}");
    assert_eq!(
        counted("cgi-bin/message/subscribe/send", "40003"),
        1.0,
        "{m}"
    );
    assert!(!m.contains(&token));
    assert!(
        !gw.logs().contains(&token),
        "the access_token is in the logs"
    );
    assert!(
        !gw.logs().contains("CALLER-TOKEN"),
        "the caller's token is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_exact_allow_listed_paths_are_relayed() {
    let wx = FakeWechat::start().await;
    let gw = relay_on(&wx, "").await;
    let body = json!({"scene": "a"});
    for path in [
        "cgi-bin/wxaapp/setting",
        "wxa/modify_domain",
        "WXA/getwxacodeunlimit",
        "wxa/getwxacodeunlimit/",
        "wxa/getwxacodeunlimit/extra",
        "wxa//getwxacodeunlimit",
        "wxa%2Fgetwxacodeunlimit",
        "wxa/getwxacodeunlimi%74",
        "",
    ] {
        let r = post(&gw, path, &body).await;
        assert_error(&r, 404, "not_found");
    }
    for target in [
        "/wechat/api/./wxa/getwxacodeunlimit",
        "/wechat/api/x/../wxa/getwxacodeunlimit",
        "/wechat/api/wxa/./getwxacodeunlimit",
    ] {
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let r = raw::request(gw.admin, &head).await;
        assert_eq!(r.status, 404, "{target}: {}", r.text());
    }
    // a narrowed list refuses a default path
    let narrow = relay_on(&wx, "paths = [\"cgi-bin/message/subscribe/send\"]").await;
    assert_error(
        &post(&narrow, "wxa/getwxacodeunlimit", &body).await,
        404,
        "not_found",
    );
    assert_eq!(wx.calls(QR), 0);
    assert_eq!(wx.calls(STABLE), 0, "a refused path fetched a token");
    let r = post(
        &narrow,
        "cgi-bin/message/subscribe/send",
        &json!({"touser": "o1"}),
    )
    .await;
    assert_eq!(r.json()["errcode"], 0, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .server("max_body_bytes", "1024")
        .section("[relay]\nenabled = true")
        .start()
        .await;
    let big = json!({"touser": "o1", "data": "x".repeat(2000)});
    assert_error(
        &post(&gw, "cgi-bin/message/subscribe/send", &big).await,
        413,
        "payload_too_large",
    );
    let r = post(
        &gw,
        "cgi-bin/message/subscribe/send?appid=wxffffffffffffffff",
        &json!({}),
    )
    .await;
    assert_error(&r, 400, "invalid_request");
    assert_eq!(wx.calls(SEND), 0);

    // with two apps the caller must say which
    let second = "wx00000000000000b2";
    let secret = wx.add_app_with_id(second);
    let two = GatewayBuilder::new(&wx)
        .app(second, &secret)
        .section("[relay]\nenabled = true")
        .start()
        .await;
    let message = json!({"touser": "o1"});
    let r = post(&two, "cgi-bin/message/subscribe/send", &message).await;
    assert_error(&r, 400, "invalid_request");
    let r = post(
        &two,
        &format!("cgi-bin/message/subscribe/send?appid={second}"),
        &message,
    )
    .await;
    assert_eq!(r.json()["errcode"], 0, "{}", r.text());
    let query = wx
        .queries()
        .into_iter()
        .rfind(|q| q.contains("access_token"))
        .unwrap();
    let pairs = common::fake_wechat::parse_query(&query);
    assert_eq!(pairs.get("access_token"), wx.current_token(second).as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_refused_mid_traffic_costs_one_refresh_and_no_failed_call() {
    let wx = Arc::new(FakeWechat::start().await);
    let gw = Arc::new(relay_on(&wx, "").await);
    let message = json!({"touser": "o-relay", "template_id": "T", "data": {}});
    assert_eq!(
        post(&gw, "cgi-bin/message/subscribe/send", &message)
            .await
            .json()["errcode"],
        0
    );
    let first = wx.current_token(&wx.appid).unwrap();

    let mut tasks = Vec::new();
    for i in 0..8 {
        let (gw, wx, message) = (gw.clone(), wx.clone(), message.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for j in 0..25 {
                if i == 0 && j == 5 {
                    wx.invalidate_token(&wx.appid);
                }
                let r = post(&gw, "cgi-bin/message/subscribe/send", &message).await;
                answers.push((r.status, r.json()["errcode"].clone()));
            }
            answers
        }));
    }
    for task in tasks {
        for (status, errcode) in task.await.unwrap() {
            assert_eq!(status, 200);
            assert_eq!(errcode, 0, "a relayed call failed");
        }
    }
    assert_eq!(wx.calls(STABLE), 2, "one fetch, one refresh");
    assert_ne!(wx.current_token(&wx.appid).unwrap(), first);
    assert_eq!(wx.sent_messages().len(), 201);
    let m = gw.metrics().await;
    let refused = metric_sum(&m, "wxgate_relay_calls_total", "errcode=\"40001\"");
    assert!(refused >= 1.0, "{m}");
    assert_eq!(refused as usize, wx.rejected_calls());
    let logs = gw.logs();
    assert!(!logs.contains(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_wechat_is_503_and_the_relay_recovers() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .wechat("timeout", "\"300ms\"")
        .section("[relay]\nenabled = true")
        .start()
        .await;
    let message = json!({"touser": "o-slow"});
    wx.set_path_delay(SEND, std::time::Duration::from_secs(2));
    let r = post(&gw, "cgi-bin/message/subscribe/send", &message).await;
    assert_error(&r, 503, "wechat_unavailable");
    wx.set_path_delay(SEND, std::time::Duration::ZERO);
    let r = post(&gw, "cgi-bin/message/subscribe/send", &message).await;
    assert_eq!(r.json()["errcode"], 0, "{}", r.text());
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "wxgate_wechat_errors_total",
            "outcome=\"wechat_unavailable\""
        ),
        1.0,
        "{m}"
    );
}
