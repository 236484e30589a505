//! A fast fake WeChat for the bench: `jscode2session` answered as WeChat answers it, after a
//! fixed delay, by a multi-threaded hyper server that is never the bottleneck of a run.
//!
//! Every answer is HTTP 200 with a JSON body served as `text/plain` (WECHAT.md). A login
//! code of 1–128 characters from `[A-Za-z0-9_-]` works once and names its user: the openid
//! is `o` + the code. Wrong appid 40013, wrong secret 40125, wrong grant_type 40002, a code
//! of another shape 40029, a code used before 40163 (errmsg with a `rid` suffix).
//! `/cgi-bin/stable_token` gives the current access_token (`bench_access_token_<generation>`);
//! `/cgi-bin/message/subscribe/send` answers `{"errcode":0,...}` to the current token and
//! 40001 to any other, as the open-API relay's target. With `--churn-ms N` the current
//! token is invalidated every N ms (as a force_refresh elsewhere would), so the next
//! stable_token call hands out the next one. `GET /_stats` tells how many stable_token
//! calls, sends and 40001 refusals there were. Any other path 40066 `invalid url`.
//!
//! fake-wechat --listen 127.0.0.1:P --appid wx… --secret S [--delay-ms 50] [--churn-ms 0]

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wxgate_bench_tools::Args;

struct Wechat {
    appid: String,
    secret: String,
    delay: Duration,
    used: Mutex<HashSet<String>>,
    served: AtomicU64,
    /// The current access_token's generation; older tokens are refused with 40001.
    generation: AtomicU64,
    token_fetches: AtomicU64,
    sends: AtomicU64,
    refused: AtomicU64,
}

impl Wechat {
    fn jscode2session(&self, query: &str) -> String {
        let (mut appid, mut secret, mut code, mut grant) = (None, None, None, None);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "appid" => appid = Some(value),
                "secret" => secret = Some(value),
                "js_code" => code = Some(value),
                "grant_type" => grant = Some(value),
                _ => {}
            }
        }
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        if appid.as_deref() != Some(self.appid.as_str()) {
            return wx_error(40013, "invalid appid", n);
        }
        if secret.as_deref() != Some(self.secret.as_str()) {
            return wx_error(40125, "invalid appsecret", n);
        }
        if grant.as_deref() != Some("authorization_code") {
            return wx_error(40002, "invalid grant_type", n);
        }
        let code = code.unwrap_or_default();
        let shaped = (1..=128).contains(&code.len())
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !shaped {
            return wx_error(40029, "invalid code", n);
        }
        let fresh = match self.used.lock() {
            Ok(mut used) => used.insert(code.to_string()),
            Err(_) => return wx_error(-1, "system error", n),
        };
        if !fresh {
            return wx_error(40163, "code been used", n);
        }
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&n.to_le_bytes());
        key[8..].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        // The code's characters need no JSON escaping.
        format!(
            r#"{{"session_key":"{}","openid":"o{code}"}}"#,
            STANDARD.encode(key)
        )
    }
}

impl Wechat {
    fn stable_token(&self) -> String {
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
        let generation = self.generation.load(Ordering::Relaxed);
        format!(r#"{{"access_token":"bench_access_token_{generation}","expires_in":7200}}"#)
    }

    fn subscribe_send(&self, query: &str) -> String {
        let current = format!("bench_access_token_{}", self.generation.load(Ordering::Relaxed));
        let token = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        if token.as_deref() != Some(current.as_str()) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return wx_error(40001, "invalid credential, access_token is invalid or not latest", n);
        }
        let msgid = self.sends.fetch_add(1, Ordering::Relaxed) + 1;
        format!(r#"{{"errcode":0,"errmsg":"ok","msgid":{msgid}}}"#)
    }

    fn stats(&self) -> String {
        format!(
            r#"{{"stable_token":{},"sent":{},"refused":{},"generation":{}}}"#,
            self.token_fetches.load(Ordering::Relaxed),
            self.sends.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.generation.load(Ordering::Relaxed),
        )
    }
}

fn wx_error(errcode: i64, msg: &str, n: u64) -> String {
    format!(r#"{{"errcode":{errcode},"errmsg":"{msg}, rid: {n:08x}-bench"}}"#)
}

async fn handle(
    wx: Arc<Wechat>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path() {
        "/sns/jscode2session" => {
            let query = req.uri().query().unwrap_or("").to_owned();
            tokio::time::sleep(wx.delay).await;
            wx.jscode2session(&query)
        }
        "/cgi-bin/stable_token" => wx.stable_token(),
        "/cgi-bin/message/subscribe/send" => wx.subscribe_send(req.uri().query().unwrap_or("")),
        "/_stats" => wx.stats(),
        _ => wx_error(
            40066,
            "invalid url",
            wx.served.fetch_add(1, Ordering::Relaxed),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let listen: SocketAddr = args.get("listen")?;
    let wx = Arc::new(Wechat {
        appid: args.get("appid")?,
        secret: args.get("secret")?,
        delay: Duration::from_millis(args.get_or("delay-ms", 50)?),
        used: Mutex::new(HashSet::new()),
        served: AtomicU64::new(0),
        generation: AtomicU64::new(0),
        token_fetches: AtomicU64::new(0),
        sends: AtomicU64::new(0),
        refused: AtomicU64::new(0),
    });
    let churn = Duration::from_millis(args.get_or("churn-ms", 0)?);
    if !churn.is_zero() {
        let wx = wx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(churn);
            every.tick().await;
            loop {
                every.tick().await;
                wx.generation.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let listener = TcpListener::bind(listen).await?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let wx = wx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(wx.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
