//! WebSocket through the gateway, with a real client library (tokio-tungstenite) on both
//! ends: the upgrade is authenticated, stripped and injected like any request; on 101 the
//! connections are spliced both ways; an open socket survives other logins, holds a
//! `max_connections` slot, is closed after `idle_timeout` of silence, is waited for by the
//! drain (bounded by `drain_timeout`), and shows in the metrics.

mod common;
mod tls_pki;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Echo, FakeWechat, Gateway, GatewayBuilder, metric_sum, raw};
use futures_util::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket echo server that records the head of every upgrade it accepts.
struct WsEcho {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WsEcho {
    async fn start() -> WsEcho {
        Self::serve(None).await
    }

    /// The same echo behind TLS (`wss://`), with the certificate of `leaf`.
    async fn start_tls(leaf: &tls_pki::Leaf) -> WsEcho {
        use tokio_rustls::rustls::ServerConfig;
        use tokio_rustls::rustls::pki_types::PrivateKeyDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("leaf key");
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], key)
            .expect("server config");
        Self::serve(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> WsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let recorded = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (recorded, tls) = (recorded.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => echo_socket(stream, recorded).await,
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                echo_socket(tls, recorded).await;
                            }
                        }
                    }
                });
            }
        });
        WsEcho { addr, heads, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn upgrades(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn last_head(&self) -> HeaderMap {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("an upgrade")
    }
}

/// Accept one upgrade on `stream`, record its head, and echo data messages until closed.
async fn echo_socket<S>(stream: S, recorded: Arc<Mutex<Vec<HeaderMap>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // tungstenite's callback type, whose error is a whole response.
    #[allow(clippy::result_large_err)]
    let record = |req: &Request, resp: Response| {
        recorded.lock().unwrap().push(req.headers().clone());
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            if ws.send(msg).await.is_err() {
                return;
            }
        } else if msg.is_close() {
            return;
        }
    }
}

async fn gateway(wx: &FakeWechat, ws: &WsEcho, server: &[(&str, &str)]) -> Gateway {
    let mut builder = GatewayBuilder::new(wx)
        .route("/ws/", &ws.url(), "required")
        .route("/open/", &ws.url(), "public");
    for (key, value) in server {
        builder = builder.server(key, value);
    }
    builder.start().await
}

/// Open a WebSocket to `path` on the gateway with extra request headers.
async fn connect(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Result<Socket, WsError> {
    let mut req = format!("ws://{}{path}", gw.addr)
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("the handshake did not finish in time");
    connected.map(|(socket, response)| {
        assert_eq!(response.status(), 101);
        socket
    })
}

/// Send a text message and expect it back.
async fn echo(socket: &mut Socket, text: &str) {
    socket
        .send(Message::text(text))
        .await
        .expect("send through the gateway");
    let back = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("no echo in time")
        .expect("socket ended")
        .expect("socket error");
    assert_eq!(back, Message::text(text));
}

async fn metrics(gw: &Gateway) -> String {
    gw.metrics().await
}

async fn open_websockets(gw: &Gateway) -> f64 {
    metric_sum(&metrics(gw).await, "wxgate_websocket_connections", "")
}

/// Poll `/metrics` until the open-socket gauge reads `n`.
async fn gauge_reaches(gw: &Gateway, n: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if open_websockets(gw).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether the socket ends (close frame, EOF or error) within `timeout`.
async fn ends_within(socket: &mut Socket, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_))) => return true,
            Ok(Some(Ok(msg))) if msg.is_close() => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_a_required_route_carries_the_callers_identity_and_echoes_both_ways() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let gw = gateway(&wx, &ws, &[]).await;
    let token = gw.login_as(&wx, "o-alice").await;
    let bearer = format!("Bearer {token}");
    let forged = [
        ("authorization", bearer.as_str()),
        ("x-wx-openid", "o-mallory"),
        ("x_wx_openid", "o-mallory"),
        ("x-wx-account-id", "1"),
        ("x-real-ip", "10.9.9.9"),
    ];
    let mut socket = connect(&gw, "/ws/chat?room=1", &forged)
        .await
        .expect("upgrade with a valid token");
    echo(&mut socket, "hello").await;
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send binary");
    let back = socket.next().await.expect("open").expect("binary echo");
    assert_eq!(back, Message::binary(vec![0u8, 1, 2, 255]));

    let head = ws.last_head();
    let values = |name: &str| -> Vec<String> {
        head.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(values("x-wx-openid"), ["o-alice"], "{head:?}");
    assert_eq!(values("x-wx-appid"), [wx.appid.as_str()], "{head:?}");
    assert!(values("x_wx_openid").is_empty(), "{head:?}");
    assert!(values("x-wx-account-id").is_empty(), "{head:?}");
    assert!(
        values("authorization").is_empty(),
        "the gateway token reached the upstream"
    );
    assert_eq!(values("x-real-ip"), ["127.0.0.1"], "{head:?}");
    assert!(!values("sec-websocket-key").is_empty(), "{head:?}");
    assert!(!values("x-request-id").is_empty(), "{head:?}");

    assert!(gauge_reaches(&gw, 1.0).await, "{}", metrics(&gw).await);
    socket.close(None).await.expect("close");
    assert!(gauge_reaches(&gw, 0.0).await, "{}", metrics(&gw).await);
    let text = metrics(&gw).await;
    let upgraded = metric_sum(
        &text,
        "wxgate_websocket_upgrades_total",
        r#"route="/ws/",status="101""#,
    );
    assert_eq!(upgraded, 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_an_unknown_one_is_refused_401_before_any_upgrade() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let gw = gateway(&wx, &ws, &[]).await;
    let unknown = format!("Bearer wxg_{}", "A".repeat(43));
    for headers in [
        vec![("x-wx-openid", "o-alice")],
        vec![("authorization", unknown.as_str())],
    ] {
        match connect(&gw, "/ws/chat", &headers).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 401);
                assert!(response.headers().contains_key("www-authenticate"));
                let body = response.body().clone().unwrap_or_default();
                let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON error");
                assert_eq!(json["error"]["code"], "unauthenticated", "{json}");
            }
            other => panic!("expected a 401, got {:?}", other.map(|_| "an open socket")),
        }
    }
    assert_eq!(
        ws.upgrades(),
        0,
        "the upstream saw an unauthenticated upgrade"
    );
    let text = metrics(&gw).await;
    let refused = metric_sum(
        &text,
        "wxgate_websocket_upgrades_total",
        r#"route="/ws/",status="401""#,
    );
    assert_eq!(refused, 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_route_tunnels_without_a_token_and_strips_forged_identity() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let gw = gateway(&wx, &ws, &[]).await;
    let mut socket = connect(
        &gw,
        "/open/feed",
        &[("X-WX-OPENID", "o-mallory"), ("x.wx.unionid", "u")],
    )
    .await
    .expect("public upgrade");
    echo(&mut socket, "public").await;
    let head = ws.last_head();
    assert!(head.get("x-wx-openid").is_none(), "{head:?}");
    assert!(head.get("x.wx.unionid").is_none(), "{head:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_survives_another_users_login_and_its_own_logout() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let gw = gateway(&wx, &ws, &[]).await;
    let alice = gw.login_as(&wx, "o-alice").await;
    let bearer = format!("Bearer {alice}");
    let mut socket = connect(&gw, "/ws/chat", &[("authorization", bearer.as_str())])
        .await
        .expect("upgrade");
    echo(&mut socket, "before").await;
    let _bob = gw.login_as(&wx, "o-bob").await;
    echo(&mut socket, "after bob logged in").await;
    let out = gw.call("POST", "/wx/logout", Some(&alice)).await;
    assert_eq!(out.status, 204, "{}", out.text());
    // Documented: a logout ends the session, not a socket already open.
    echo(&mut socket, "after alice logged out").await;
    // A new upgrade with the dead token is refused.
    let again = connect(&gw, "/ws/chat", &[("authorization", bearer.as_str())]).await;
    assert!(
        matches!(&again, Err(WsError::Http(r)) if r.status() == 401),
        "a revoked token opened a socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_for_idle_timeout_closes_a_socket_but_traffic_keeps_it_open() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let timeouts = [
        ("header_read_timeout", "\"1s\""),
        ("idle_timeout", "\"2s\""),
    ];
    let gw = gateway(&wx, &ws, &timeouts).await;
    let mut busy = connect(&gw, "/open/busy", &[]).await.expect("upgrade");
    let mut quiet = connect(&gw, "/open/quiet", &[]).await.expect("upgrade");
    let opened = Instant::now();
    // Past both timeouts, the busy socket still works: it never went 2 s without a byte.
    while opened.elapsed() < Duration::from_millis(4500) {
        echo(&mut busy, "tick").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        ends_within(&mut quiet, Duration::from_secs(3)).await,
        "a silent socket stayed open past idle_timeout"
    );
    echo(&mut busy, "still here").await;
    assert!(gauge_reaches(&gw, 1.0).await, "{}", metrics(&gw).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_socket_holds_a_max_connections_slot() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let gw = gateway(&wx, &ws, &[("max_connections", "2")]).await;
    let first = connect(&gw, "/open/a", &[]).await.expect("first");
    let mut second = connect(&gw, "/open/b", &[]).await.expect("second");
    echo(&mut second, "two open").await;
    let mut third = TcpStream::connect(gw.addr).await.expect("connect");
    third
        .write_all(b"GET /open/plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let early = raw::read_response(&mut third, Duration::from_millis(800)).await;
    assert!(
        early.is_none(),
        "a third connection was served while two sockets held both slots"
    );
    drop(first);
    let late = raw::read_response(&mut third, Duration::from_secs(5)).await;
    assert!(
        late.is_some(),
        "the freed slot was never given to the waiting connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_an_open_socket_and_exits_when_it_closes() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let mut gw = gateway(&wx, &ws, &[("drain_timeout", "\"20s\"")]).await;
    let mut socket = connect(&gw, "/open/long", &[]).await.expect("upgrade");
    gw.signal("TERM");
    let exited = gw.wait_exit(Duration::from_millis(1500)).await;
    assert!(
        exited.is_none(),
        "exited with a socket open:\n{}",
        gw.logs()
    );
    echo(&mut socket, "during the drain").await;
    socket.close(None).await.expect("close");
    let st = gw.wait_exit(Duration::from_secs(5)).await;
    let st = st.unwrap_or_else(|| panic!("still running after the socket closed:\n{}", gw.logs()));
    assert_eq!(st.code(), Some(0), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_wait_for_an_open_socket() {
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let mut gw = gateway(&wx, &ws, &[("drain_timeout", "\"1s\"")]).await;
    let mut socket = connect(&gw, "/open/long", &[]).await.expect("upgrade");
    echo(&mut socket, "open").await;
    let signalled = Instant::now();
    gw.signal("TERM");
    let st = gw.wait_exit(Duration::from_secs(6)).await;
    let st = st.unwrap_or_else(|| panic!("the drain outlived drain_timeout:\n{}", gw.logs()));
    assert_eq!(st.code(), Some(0), "{}", gw.logs());
    assert!(
        signalled.elapsed() >= Duration::from_millis(900),
        "exited before drain_timeout"
    );
    assert!(
        ends_within(&mut socket, Duration::from_secs(3)).await,
        "the socket outlived the process"
    );
}

/// The head the plain echo upstream recorded for an upgrade request sent raw.
async fn raw_upgrade(gw: &Gateway, upgrade: &str, connection: &str) -> raw::RawResponse {
    let head = format!(
        "GET /plain/x HTTP/1.1\r\nHost: gw\r\nConnection: {connection}\r\nUpgrade: {upgrade}\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-WX-OPENID: o-mallory\r\n\r\n"
    );
    raw::request(gw.addr, &head).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_declines_is_answered_as_is_and_other_upgrades_are_stripped() {
    let (wx, echo) = (FakeWechat::start().await, Echo::start().await);
    let gw = GatewayBuilder::new(&wx)
        .route("/plain/", &echo.url, "public")
        .start()
        .await;
    // A plain HTTP upstream ignores the upgrade: its 200 comes back, no tunnel.
    let declined = raw_upgrade(&gw, "websocket", "Upgrade").await;
    assert_eq!(declined.status, 200, "{}", declined.text());
    let rec = echo.last();
    assert_eq!(rec.header("upgrade"), Some("websocket"), "{}", rec.dump());
    assert_eq!(rec.header("connection"), Some("upgrade"), "{}", rec.dump());
    assert_eq!(rec.header("x-wx-openid"), None, "{}", rec.dump());
    // h2c (or anything but websocket) is hop-by-hop: never passed on.
    let h2c = raw_upgrade(&gw, "h2c", "Upgrade, HTTP2-Settings").await;
    assert_eq!(h2c.status, 200, "{}", h2c.text());
    let rec = echo.last();
    assert_eq!(rec.header("upgrade"), None, "{}", rec.dump());
    assert_eq!(rec.header("http2-settings"), None, "{}", rec.dump());
    assert_eq!(rec.header("connection"), None, "{}", rec.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_answers_502_json() {
    let wx = FakeWechat::start().await;
    let refused = common::echo::refused();
    let gw = GatewayBuilder::new(&wx)
        .route("/open/", &refused.url, "public")
        .start()
        .await;
    match connect(&gw, "/open/x", &[]).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), 502);
            let body = response.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON error");
            assert_eq!(json["error"]["code"], "upstream_unavailable", "{json}");
        }
        other => panic!("expected a 502, got {:?}", other.map(|_| "an open socket")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_over_the_tls_listener_is_tunnelled_too() {
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::pki_types::ServerName;

    let (wx, ws) = (FakeWechat::start().await, WsEcho::start().await);
    let ca = tls_pki::Ca::new("websocket listener CA");
    let leaf = ca.leaf(&["localhost"]);
    let gw = GatewayBuilder::new(&wx)
        .file("cert.pem", &leaf.cert_pem)
        .file("key.pem", &leaf.key_pem)
        .server("tls", "{ cert = \"cert.pem\", key = \"key.pem\" }")
        .route("/open/", &ws.url(), "public")
        .start()
        .await;
    let config = tls_pki::client_config(&[ca.der()], &[b"http/1.1"]);
    let tcp = TcpStream::connect(gw.addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut socket, response) = tokio_tungstenite::client_async("wss://localhost/open/tls", tls)
        .await
        .expect("upgrade over TLS");
    assert_eq!(response.status(), 101);
    socket.send(Message::text("secure")).await.expect("send");
    let back = socket.next().await.expect("open").expect("echo");
    assert_eq!(back, Message::text("secure"));
    let head = ws.last_head();
    assert_eq!(
        head.get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
        Some("https"),
        "{head:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_to_an_https_upstream_is_verified_and_tunnelled() {
    let ca = tls_pki::Ca::new("wxgate websocket test CA");
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let (wx, ws) = (FakeWechat::start().await, WsEcho::start_tls(&leaf).await);
    let upstream = format!("https://localhost:{}", ws.addr.port());
    let gw = GatewayBuilder::new(&wx)
        .file("upstream-ca.pem", &ca.pem())
        .route_raw(&format!(
            "prefix = \"/wss/\"\nupstream = \"{upstream}\"\nauth = \"required\"\nca_file = \"upstream-ca.pem\""
        ))
        .route("/unverified/", &upstream, "public")
        .start()
        .await;
    let token = gw.login_as(&wx, "o-carol").await;
    let bearer = format!("Bearer {token}");
    let mut socket = connect(&gw, "/wss/room", &[("authorization", bearer.as_str())])
        .await
        .expect("upgrade to a verified https:// upstream");
    echo(&mut socket, "over TLS both ways").await;
    let head = ws.last_head();
    assert_eq!(
        head.get("x-wx-openid").and_then(|v| v.to_str().ok()),
        Some("o-carol"),
        "{head:?}"
    );
    // The same upstream is not trusted without the route's CA: 502, nothing reaches it.
    let before = ws.upgrades();
    match connect(&gw, "/unverified/room", &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 502),
        other => panic!("expected a 502, got {:?}", other.map(|_| "an open socket")),
    }
    assert_eq!(
        ws.upgrades(),
        before,
        "an unverified upstream got the upgrade"
    );
}
