//! The login risk check (`[risk]`): off by default (no call), `getuserriskrank` after
//! `jscode2session` with the client IP and the configured scene, a rank at or above
//! `block_at` refused with 403 `user_blocked` and no session, a lower rank sent upstream as
//! `X-WX-RISK-RANK` (a forged one stripped), a failing call going on without a rank
//! (`fail_open = true`) or answering 503 (`false`), and the ranks counted.

mod common;

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, assert_error, metric_sum, raw};

const RISK: &str = "/wxa/getuserriskrank";

async fn gateway(wx: &FakeWechat, echo: &Echo, risk: &str) -> Gateway {
    let mut b = GatewayBuilder::new(wx).route("/api/", &echo.url, "required");
    if !risk.is_empty() {
        b = b.section(risk);
    }
    b.start().await
}

/// GET /api/me with the token and a forged rank; the rank the upstream saw.
async fn upstream_rank(gw: &Gateway, echo: &Echo, token: &str) -> Option<String> {
    let head = format!(
        "GET /api/me HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         X-WX-RISK-RANK: 0-forged\r\nx_wx_risk_rank: 0-forged\r\nConnection: close\r\n\r\n"
    );
    let r = raw::request(gw.addr, &head).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = echo.last();
    let all = rec.header_all("x-wx-risk-rank");
    assert!(all.len() <= 1, "{all:?}");
    assert!(
        !rec.dump().contains("forged"),
        "a forged rank reached the upstream"
    );
    all.first().map(|v| v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_is_off_by_default() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo, "").await;
    wx.add_code("c", "o-off", None);
    let token = gw.token("c").await;
    assert_eq!(upstream_rank(&gw, &echo, &token).await, None);
    assert_eq!(wx.calls(RISK), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rank_zero_goes_upstream_and_rank_four_gets_no_session() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo, "[risk]\nenabled = true\nscene = 1").await;
    wx.add_code("c0", "o-calm", None);
    let token = gw.token("c0").await;
    assert_eq!(
        upstream_rank(&gw, &echo, &token).await.as_deref(),
        Some("0")
    );
    let asked = &wx.bodies(RISK)[0];
    assert_eq!(asked["appid"], wx.appid.as_str());
    assert_eq!(asked["openid"], "o-calm");
    assert_eq!(asked["scene"], 1);
    assert_eq!(asked["client_ip"], "127.0.0.1");

    wx.set_risk_rank("o-fraud", 4);
    wx.add_code("c4", "o-fraud", None);
    let r = gw.login("c4").await;
    let err = assert_error(&r, 403, "user_blocked");
    assert!(err.get("wechat_errcode").is_none(), "{err}");
    assert!(r.json().get("token").is_none(), "{}", r.text());
    assert!(!r.text().contains("wxg_"), "{}", r.text());

    // rank 3 stays under the default block_at of 4, and is sent upstream
    wx.set_risk_rank("o-edgy", 3);
    wx.add_code("c3", "o-edgy", None);
    let token = gw.token("c3").await;
    assert_eq!(
        upstream_rank(&gw, &echo, &token).await.as_deref(),
        Some("3")
    );
    // a token refused at WeChat is refreshed once and the check still answers
    wx.invalidate_token(&wx.appid);
    wx.add_code("c0b", "o-calm", None);
    assert_eq!(gw.login("c0b").await.status, 200);

    let m = gw.metrics().await;
    for (rank, n) in [("0", 2.0), ("3", 1.0), ("4", 1.0)] {
        let labels = format!("rank=\"{rank}\"");
        assert_eq!(metric_sum(&m, "wxgate_risk_ranks_total", &labels), n, "{m}");
    }
    assert_eq!(
        metric_sum(&m, "wxgate_login_total", "outcome=\"user_blocked\""),
        1.0,
        "{m}"
    );
    let token = wx.current_token(&wx.appid).unwrap();
    assert!(
        !gw.logs().contains(&token),
        "the access_token is in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_at_moves_the_line() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = gateway(&wx, &echo, "[risk]\nenabled = true\nblock_at = 2").await;
    wx.set_risk_rank("o-two", 2);
    wx.add_code("c2", "o-two", None);
    assert_error(&gw.login("c2").await, 403, "user_blocked");
    wx.set_risk_rank("o-one", 1);
    wx.add_code("c1", "o-one", None);
    let token = gw.token("c1").await;
    assert_eq!(
        upstream_rank(&gw, &echo, &token).await.as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_risk_call_fails_open_or_closed_as_configured() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let open = gateway(&wx, &echo, "[risk]\nenabled = true").await;
    wx.fail_risk(Some(-1));
    wx.add_code("c-open", "o-unknown", None);
    let token = open.token("c-open").await;
    assert_eq!(
        upstream_rank(&open, &echo, &token).await,
        None,
        "a rank without an answer"
    );
    let m = open.metrics().await;
    assert_eq!(
        metric_sum(&m, "wxgate_risk_ranks_total", "rank=\"failed\""),
        1.0,
        "{m}"
    );

    let closed = gateway(&wx, &echo, "[risk]\nenabled = true\nfail_open = false").await;
    wx.add_code("c-closed", "o-unknown", None);
    let r = closed.login("c-closed").await;
    assert_error(&r, 503, "wechat_unavailable");
    assert!(!r.text().contains("wxg_"));
    wx.fail_risk(Some(61010));
    wx.add_code("c-closed2", "o-unknown", None);
    assert_error(&closed.login("c-closed2").await, 503, "wechat_unavailable");
    // WeChat answers again: logins go on
    wx.fail_risk(None);
    wx.add_code("c-closed3", "o-unknown", None);
    let token = closed.token("c-closed3").await;
    assert_eq!(
        upstream_rank(&closed, &echo, &token).await.as_deref(),
        Some("0")
    );
}
