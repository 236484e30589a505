//! Self-checks of the test harness, so the gateway tests cannot pass vacuously: the fake
//! WeChat answers like WECHAT.md says (HTTP 200, text/plain, errcodes, single-use codes,
//! secret checks, 40066 for unknown paths), and the echo upstream really sends the
//! hop-by-hop response headers the proxy tests expect the gateway to strip; the gateway's
//! ports are read from its start-up line in either log format, and a refused port refuses.

mod common;

use std::time::Duration;

use common::gateway::listening_addrs;
use common::{Echo, FakeWechat, GatewayBuilder, client, raw, send};
use serde_json::Value;

async fn wx_get(wx: &FakeWechat, path_and_query: &str) -> Value {
    let r = send(client().get(format!("{}{path_and_query}", wx.base))).await;
    assert_eq!(r.status, 200, "WeChat answers errors with HTTP 200");
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_wechat_behaves_like_wechat() {
    let wx = FakeWechat::start().await;
    let key = wx.add_code("c", "o-h", Some("u-h"));
    wx.add_error_code_as_string("s", 40029);
    let q = |code: &str, secret: &str| {
        format!(
            "/sns/jscode2session?appid={}&secret={secret}&js_code={code}&grant_type=authorization_code",
            wx.appid
        )
    };
    assert_eq!(
        wx_get(&wx, &q("c", "APPSECRET-bad")).await["errcode"],
        40125
    );
    let ok = wx_get(&wx, &q("c", &wx.secret)).await;
    assert!(ok.get("errcode").is_none(), "success has no errcode: {ok}");
    assert_eq!(ok["session_key"], key.as_str());
    assert_eq!(ok["unionid"], "u-h");
    assert_eq!(wx_get(&wx, &q("c", &wx.secret)).await["errcode"], 40163);
    assert_eq!(wx_get(&wx, &q("zzz", &wx.secret)).await["errcode"], 40029);
    assert_eq!(wx_get(&wx, &q("s", &wx.secret)).await["errcode"], "40029");
    let other = "/sns/jscode2session?appid=wxnope&secret=x&js_code=c&grant_type=authorization_code";
    assert_eq!(wx_get(&wx, other).await["errcode"], 40013);
    let typo = wx_get(&wx, "/sns/jscode2sesion").await;
    assert_eq!(typo["errcode"], 40066);
    assert!(typo["errmsg"].as_str().unwrap().contains("rid:"));
    assert_eq!(wx.calls("/sns/jscode2session"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_really_sends_hop_by_hop_headers() {
    let echo = Echo::start().await;
    let addr = echo.url.trim_start_matches("http://").parse().unwrap();
    let r = raw::get(addr, "/x/hop", "").await;
    assert_eq!(r.status, 200);
    for h in [
        "x-hop-resp",
        "keep-alive",
        "proxy-connection",
        "x-end-to-end",
    ] {
        assert!(
            r.header(h).is_some(),
            "echo did not send {h}: {:?}",
            r.headers
        );
    }
    let head = format!(
        "GET /x/h HTTP/1.1\r\nHost: {addr}\r\nTE: trailers\r\nKeep-Alive: 5\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw::request(addr, &head).await.status, 200);
    let rec = echo.last();
    for h in ["te", "keep-alive", "upgrade"] {
        assert!(
            rec.header(h).is_some(),
            "echo's server dropped {h} itself: {rec:?}"
        );
    }
}

#[test]
fn the_listening_line_is_read_in_both_log_formats() {
    let text = "2026-12-01T10:00:00.000001Z  INFO wxgate: wxgate is listening \
                version=\"0.1.0\" listen=Some(127.0.0.1:41234) admin=Some(127.0.0.1:41235)";
    let json = r#"{"timestamp":"2026-12-01T10:00:00.000001Z","level":"INFO","message":"wxgate is listening","version":"0.1.0","listen":"Some(127.0.0.1:41234)","admin":"Some([::1]:41235)","target":"wxgate"}"#;
    let earlier = "  DEBUG wxgate::state: listen=Some(127.0.0.1:1) admin=Some(127.0.0.1:2)\n";
    let addrs = listening_addrs(&format!("{earlier}{text}\n"));
    let want = (
        "127.0.0.1:41234".parse().ok(),
        "127.0.0.1:41235".parse().ok(),
    );
    assert_eq!(addrs.map(|(a, b)| (Some(a), Some(b))), Some(want));
    let addrs = listening_addrs(json).map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(
        addrs,
        Some(("127.0.0.1:41234".into(), "[::1]:41235".into()))
    );
    assert_eq!(listening_addrs(earlier), None);
    assert_eq!(
        listening_addrs("INFO wxgate: wxgate is listening listen=None admin=None"),
        None
    );
}

/// Both log formats of the real gateway give the harness its ports (port 0 in the config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_found_on_the_ports_it_picked_in_either_log_format() {
    let wx = FakeWechat::start().await;
    let text = GatewayBuilder::new(&wx).start().await;
    let json = GatewayBuilder::new(&wx)
        .section("[log]\nformat = \"json\"")
        .start()
        .await;
    for gw in [&text, &json] {
        assert!(
            gw.config.contains("listen = \"127.0.0.1:0\""),
            "{}",
            gw.config
        );
        assert_ne!(gw.addr.port(), 0);
        assert_ne!(gw.admin.port(), 0);
        assert_ne!(gw.addr, gw.admin);
        common::assert_error(&gw.call("GET", "/nothing", None).await, 404, "not_found");
        let health = send(client().get(gw.admin_url("/healthz"))).await;
        assert_eq!(health.status, 200, "{}", health.text());
    }
    assert!(
        json.logs()
            .lines()
            .any(|l| l.starts_with('{') && l.contains("wxgate is listening"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_port_refuses_while_it_is_held() {
    let down = common::echo::refused();
    let addr = down.url.trim_start_matches("http://").to_string();
    let c = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&addr),
    )
    .await;
    let err = match c {
        Ok(Err(e)) => e,
        other => panic!("connect to {addr} did not fail at once: {other:?}"),
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

/// A Redis port that is taken fails the start (so the harness tries another), whether
/// the holder is silent or another Redis that would answer PING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_redis_port_is_reported_not_mistaken_for_ours() {
    let Some(first) = common::redis::RedisServer::start().await else {
        return;
    };
    let again = common::redis::RedisServer::start_on(first.port, &[]).await;
    let err = again
        .err()
        .expect("a second server on a taken port started");
    assert!(
        err.contains("in use") || err.contains("another process"),
        "{err}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let taken = common::redis::RedisServer::start_on(port, &[]).await;
    let err = taken
        .err()
        .expect("redis started on a port a listener holds");
    assert!(err.contains("Address already in use"), "{err}");
}
