//! Who may use the admin listener (contract section 8): `/healthz`, `/readyz`, `/metrics`
//! and `/.well-known/jwks.json` answer any peer; every other path is a data endpoint that
//! only peers in `[admin] allow` (the socket peer) may use, with `Authorization: Bearer
//! <token>` when `[admin] token` is set, else 403 `forbidden` — checked before the path is
//! looked at further, so a disabled feature's 404 is shown only to allowed peers. The
//! admin listener has the public one's header and idle timeouts and its own
//! `max_connections`, so idle admin sockets cannot starve the public listener of file
//! descriptors.

mod common;

use std::time::{Duration, Instant};

use common::raw;
use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, client, client_from, send};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &str = "adm1n-T0ken-for-tests-9f8e7d6c";
const OPEN: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Data paths: real ones, unknown ones under a data prefix, and paths outside any prefix.
fn data_paths(appid: &str) -> Vec<String> {
    vec![
        format!("/bindings/{appid}/o-nobody"),
        format!("/wechat/access_token?appid={appid}"),
        "/wechat/no-such-thing".into(),
        format!("/sessions/{appid}/o-nobody"),
        "/bindings/".into(),
        "/no-such-admin-path".into(),
        "/healthz/".into(),
        "/metrics/x".into(),
        "//healthz".into(),
    ]
}

async fn get(c: &reqwest::Client, gw: &Gateway, path: &str) -> common::Resp {
    send(c.get(gw.admin_url(path))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_outside_admin_allow_get_403_on_every_data_path_and_probes_stay_open() {
    let wx = FakeWechat::start().await;
    let narrow = GatewayBuilder::new(&wx)
        .admin("allow", "[\"10.0.0.0/8\"]")
        .section("[token_server]\nenabled = true\nallow = [\"0.0.0.0/0\"]")
        .start()
        .await;
    let loopback = client();
    for path in data_paths(&wx.appid) {
        let r = get(&loopback, &narrow, &path).await;
        assert_error(&r, 403, "forbidden");
        let r = send(loopback.delete(narrow.admin_url(&path))).await;
        assert_error(&r, 403, "forbidden");
    }
    let r = send(
        loopback
            .post(narrow.admin_url("/wechat/access_token"))
            .json(&serde_json::json!({"appid": wx.appid, "failed_token": "x"})),
    )
    .await;
    assert_error(&r, 403, "forbidden");
    for path in OPEN {
        let r = get(&loopback, &narrow, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = get(&loopback, &narrow, "/.well-known/jwks.json").await;
    assert_ne!(r.status, 403, "the JWKS is public");
    // X-Forwarded-For is never believed
    let r = send(
        loopback
            .get(narrow.admin_url("/no-such-admin-path"))
            .header("x-forwarded-for", "10.1.2.3"),
    )
    .await;
    assert_error(&r, 403, "forbidden");
    assert_eq!(
        wx.calls("/cgi-bin/stable_token"),
        0,
        "a refused peer got a token"
    );

    // the default allow is 127.0.0.1/32 and ::1/128: 127.0.0.2 is outside it
    let gw = GatewayBuilder::new(&wx).start().await;
    let other = client_from("127.0.0.2");
    for path in data_paths(&wx.appid) {
        assert_error(&get(&other, &gw, &path).await, 403, "forbidden");
    }
    for path in OPEN {
        assert_eq!(get(&other, &gw, path).await.status, 200, "{path}");
    }
    let r = get(&loopback, &gw, &format!("/bindings/{}/o-nobody", wx.appid)).await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_feature_is_404_only_to_allowed_peers() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .admin("allow", "[\"127.0.0.1/32\", \"127.0.0.3/32\"]")
        .start()
        .await;
    let token_path = format!("/wechat/access_token?appid={}", wx.appid);
    let allowed = client();
    assert_error(&get(&allowed, &gw, &token_path).await, 404, "not_found");
    assert_error(&get(&allowed, &gw, "/wechat/nope").await, 404, "not_found");
    let refused = client_from("127.0.0.2");
    assert_error(&get(&refused, &gw, &token_path).await, 403, "forbidden");
    assert_error(&get(&refused, &gw, "/wechat/nope").await, 403, "forbidden");
    // `[token_server] allow` narrows further: an admin-allowed peer outside it gets 403
    let gw = GatewayBuilder::new(&wx)
        .admin("allow", "[\"127.0.0.0/8\"]")
        .section("[token_server]\nenabled = true")
        .start()
        .await;
    let third = client_from("127.0.0.3");
    assert_error(&get(&third, &gw, &token_path).await, 403, "forbidden");
    assert_eq!(get(&allowed, &gw, &token_path).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_required_when_set_and_never_logged() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .admin("token", &format!("\"{TOKEN}\""))
        .start()
        .await;
    let path = format!("/bindings/{}/o-nobody", wx.appid);
    let url = gw.admin_url(&path);
    let c = client();
    let refused = [
        vec![],
        vec![format!("Bearer {TOKEN}x")],
        vec![format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])],
        vec!["Bearer wrong-token".to_string()],
        vec![format!("Basic {TOKEN}")],
        vec![TOKEN.to_string()],
        vec![format!("Bearer{TOKEN}")],
        vec!["Bearer ".to_string()],
        vec![format!("Bearer {TOKEN}"), format!("Bearer {TOKEN}")],
        vec!["Bearer nope".to_string(), format!("Bearer {TOKEN}")],
    ];
    for auth in &refused {
        let mut req = c.get(&url);
        for value in auth {
            req = req.header("authorization", value);
        }
        assert_error(&send(req).await, 403, "forbidden");
    }
    for good in [format!("Bearer {TOKEN}"), format!("bearer   {TOKEN}")] {
        let r = send(c.get(&url).header("authorization", good)).await;
        assert_error(&r, 404, "not_found");
    }
    for path in OPEN {
        assert_eq!(
            get(&c, &gw, path).await.status,
            200,
            "{path} needs no token"
        );
    }
    assert!(!gw.logs().contains(TOKEN), "the admin token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_times_out_slow_headers_and_limits_connections() {
    let wx = FakeWechat::start().await;
    let gw = GatewayBuilder::new(&wx)
        .server("header_read_timeout", "\"300ms\"")
        .admin("max_connections", "2")
        .start()
        .await;
    let mut s = TcpStream::connect(gw.admin).await.unwrap();
    s.write_all(b"GET /heal").await.unwrap();
    let t0 = Instant::now();
    assert!(
        raw::wait_closed(&mut s, Duration::from_secs(3)).await,
        "a stalled admin request line was kept open for 3 s"
    );
    assert!(t0.elapsed() >= Duration::from_millis(200));

    let gw = GatewayBuilder::new(&wx)
        .server("header_read_timeout", "\"10s\"")
        .admin("max_connections", "2")
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(gw.admin).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let r = raw::read_response(&mut s, Duration::from_secs(3)).await;
        assert_eq!(r.map(|r| r.status), Some(200));
        held.push(s);
    }
    let addr = gw.admin;
    let third = tokio::spawn(async move { raw::get(addr, "/healthz", "").await.status });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!third.is_finished(), "a third admin connection was served");
    drop(held.remove(0));
    assert_eq!(third.await.unwrap(), 200);
}

/// How many file descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_admin_sockets_cannot_starve_the_public_listener() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let builder = GatewayBuilder::new(&wx)
        .server("header_read_timeout", "\"30s\"")
        .server("idle_timeout", "\"30s\"")
        .admin("max_connections", "4")
        .route("/pub/", &echo.url, "public");
    // measure what a warmed-up gateway holds, then give it only a little more
    let probe = builder.clone().start().await;
    for _ in 0..4 {
        assert_eq!(probe.call("GET", "/pub/warm", None).await.status, 200);
    }
    let baseline = open_fds(probe.pid());
    drop(probe);
    let limit = baseline as u64 + 24;
    let gw = builder.nofile_limit(limit).start().await;
    let mut idle = Vec::new();
    for _ in 0..80 {
        let socket = TcpSocket::new_v4().unwrap();
        idle.push(socket.connect(gw.admin).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!(
        "fd limit {limit} (baseline {baseline}); with 80 idle admin sockets the gateway holds {}",
        open_fds(gw.pid())
    );
    let quick = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for i in 0..5 {
        let r = quick.get(gw.url(&format!("/pub/after-{i}"))).send().await;
        let status = r.map(|r| r.status().as_u16());
        assert!(
            matches!(status, Ok(200)),
            "public request {i} failed with 80 idle admin sockets: {status:?}\n{}",
            gw.logs()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(open_fds(gw.pid()) <= baseline + 16);
    drop(idle);
}
