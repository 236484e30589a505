//! Self-checks of the test harness, so the gateway tests cannot pass vacuously: the fake
//! WeChat answers like WECHAT.md says (HTTP 200, text/plain, errcodes, single-use codes,
//! secret checks, 40066 for unknown paths), and the echo upstream really sends the
//! hop-by-hop response headers the proxy tests expect the gateway to strip.

mod common;

use common::{Echo, FakeWechat, client, raw, send};
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
