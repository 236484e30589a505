//! Shared test harness for wxgate's black-box integration tests: a fake WeChat, an echo
//! upstream, a guard that runs the real `wxgate` binary on ephemeral loopback ports, a raw
//! HTTP/1 client for requests an HTTP library would normalise, and small assertion helpers.
//! Nothing here reaches the internet or uses a fixed port; every listener in a test
//! process binds port 0 and is handed on bound.
#![allow(dead_code, unused_imports)]

pub mod builder;
pub mod echo;
pub mod fake_services;
pub mod fake_tokens;
pub mod fake_wechat;
pub mod gateway;
pub mod probe;
pub mod raw;
pub mod redis;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

pub use builder::GatewayBuilder;
pub use echo::{Echo, Recorded};
pub use fake_wechat::FakeWechat;
pub use gateway::Gateway;

/// Response body type of the in-test servers.
pub type TestBody = BoxBody<Bytes, Infallible>;

/// Random lowercase hex of `bytes` random bytes (OS RNG).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("OS RNG");
    hex::encode(buf)
}

/// A body made of a fixed byte string.
pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).boxed()
}

/// Serve `handler` with hyper (HTTP/1 and HTTP/2) on 127.0.0.1:0 until the handle is aborted.
pub async fn spawn_server<F, Fut>(handler: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = builder.serve_connection(io, svc).await;
            });
        }
    });
    (addr, task)
}

/// An HTTP client that never uses a proxy and never waits long.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address works on Linux).
pub fn client_from(ip: &str) -> reqwest::Client {
    let ip: std::net::IpAddr = ip.parse().expect("an IP address");
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

/// Assert that `text` contains none of `secrets`; `what` names it in the failure.
pub fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} contains the secret {s:?}"
        );
    }
}

/// The leak scan's usual places: every response dump, every request the upstream saw,
/// `/metrics`, and the gateway's output (which must have at least `min_log_lines`).
pub async fn assert_nothing_leaked(
    gw: &Gateway,
    echo: &Echo,
    dumps: &[String],
    secrets: &[String],
    min_log_lines: usize,
) {
    for (i, d) in dumps.iter().enumerate() {
        assert_clean(&format!("client response #{i}"), d, secrets);
    }
    for rec in echo.records() {
        assert_clean(
            &format!("upstream request {}", rec.uri),
            &rec.dump(),
            secrets,
        );
    }
    assert_clean("/metrics", &gw.metrics().await, secrets);
    let logs = gw.logs();
    assert!(
        logs.lines().count() >= min_log_lines,
        "little output at trace:\n{logs}"
    );
    assert_clean("the gateway's log output", &logs, secrets);
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}); status {}: {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Every header name and value, one `name: value` line each (for leak scans).
    pub fn dump(&self) -> String {
        let mut out = format!("{}\n", self.status);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        out.push_str(&self.text());
        out
    }
}

/// Send a request and read the whole answer.
pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let r = req.send().await.expect("request failed");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.expect("reading body");
    Resp {
        status,
        headers,
        body,
    }
}

/// Assert the contract's error shape: `{"error": {"code", "message", ...}}` and nothing else.
pub fn assert_error(resp: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        resp.status,
        status,
        "expected {status} {code}, got {}: {}",
        resp.status,
        resp.text()
    );
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.contains("json"), "error content-type {ct:?} is not JSON");
    let body = resp.json();
    assert_error_body(&body, code);
    body["error"].clone()
}

/// Assert a parsed body is exactly `{"error": {"code": code, "message": "...", ...}}`.
pub fn assert_error_body(body: &Value, code: &str) {
    let obj = body.as_object().expect("error body is an object");
    assert_eq!(obj.len(), 1, "error body has keys besides `error`: {body}");
    let err = obj["error"].as_object().expect("`error` is an object");
    assert_eq!(err["code"], code, "error code in {body}");
    let msg = err.get("message").and_then(Value::as_str).unwrap_or("");
    assert!(!msg.trim().is_empty(), "error message missing in {body}");
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes; returns whether it held.
#[must_use = "assert the outcome: a wait that timed out must fail the test"]
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like `wait_until`, with an async condition.
#[must_use = "assert the outcome: a wait that timed out must fail the test"]
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Parse an RFC 3339 timestamp in UTC (`...Z` or `...+00:00`) into Unix seconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let rest = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = rest.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let time = time.split('.').next()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 || date.len() != 10 || time.len() != 8 {
        return None;
    }
    Some(days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A token has the contract's form: `wxg_` + 43 base64url characters (256 bits).
pub fn is_token(s: &str) -> bool {
    s.strip_prefix("wxg_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Sum of the sample values of `metric` whose label set contains `labels` (e.g.
/// `event="fetched"`; "" matches every sample); 0 when there is none.
pub fn metric_sum(text: &str, metric: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            let (lab, val) = match rest.strip_prefix('{') {
                Some(r) => r.split_once('}')?,
                None => ("", rest),
            };
            if !val.starts_with(' ') || !lab.contains(labels) {
                return None;
            }
            val.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}
