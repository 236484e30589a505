//! A fast fake WeChat for the bench: `jscode2session` answered as WeChat answers it, after a
//! fixed delay, by a multi-threaded hyper server that is never the bottleneck of a run.
//!
//! Every answer is HTTP 200 with a JSON body served as `text/plain` (WECHAT.md). A login
//! code of 1–128 characters from `[A-Za-z0-9_-]` works once and names its user: the openid
//! is `o` + the code. Wrong appid 40013, wrong secret 40125, wrong grant_type 40002, a code
//! of another shape 40029, a code used before 40163 (errmsg with a `rid` suffix).
//! `/cgi-bin/stable_token` gives a fixed access_token; any other path 40066 `invalid url`.
//!
//! fake-wechat --listen 127.0.0.1:P --appid wx… --secret S [--delay-ms 50]

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
        "/cgi-bin/stable_token" => {
            r#"{"access_token":"bench_access_token","expires_in":7200}"#.to_owned()
        }
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
    });
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
