//! The floor of the stack: the least a hyper proxy can do for the bench's job.
//!
//! Answers 401 unless `Authorization` is exactly `Bearer <token>`, drops every client
//! `X-WX-*` header and the bearer token, injects `X-WX-OPENID` / `X-WX-APPID`, and forwards
//! to one upstream over hyper-util's pooled legacy client (keep-alive). No session store,
//! no metrics, no timeouts; with `--log on`, one line per request to stderr (unbuffered:
//! one write each, like nginx's `access_log` without a buffer).
//!
//! bare-proxy --listen 127.0.0.1:P --upstream 127.0.0.1:U --token wxg_… --openid o… --appid wx… [--log on]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::uri::{Authority, Parts, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wxgate_bench_tools::Args;

type Body = Either<Incoming, Full<Bytes>>;

static X_WX_OPENID: HeaderName = HeaderName::from_static("x-wx-openid");
static X_WX_APPID: HeaderName = HeaderName::from_static("x-wx-appid");
const UNAUTHENTICATED: &str = r#"{"error":{"code":"unauthenticated","message":"log in first"}}"#;
const UNAVAILABLE: &str =
    r#"{"error":{"code":"upstream_unavailable","message":"upstream failed"}}"#;

struct Proxy {
    client: Client<HttpConnector, Incoming>,
    upstream: Authority,
    bearer: HeaderValue,
    openid: HeaderValue,
    appid: HeaderValue,
    log: bool,
}

async fn handle(proxy: Arc<Proxy>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let line = proxy.log.then(|| format!("{} {}", req.method(), req.uri()));
    let resp = forward(&proxy, req).await;
    if let Some(line) = line {
        let line = format!(
            "{line} {} {}us\n",
            resp.status().as_u16(),
            start.elapsed().as_micros()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    Ok(resp)
}

async fn forward(proxy: &Proxy, mut req: Request<Incoming>) -> Response<Body> {
    if req.headers().get(AUTHORIZATION) != Some(&proxy.bearer) {
        return answer(StatusCode::UNAUTHORIZED, UNAUTHENTICATED);
    }
    let headers = req.headers_mut();
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-wx-"))
        .cloned()
        .collect();
    for name in &forged {
        headers.remove(name);
    }
    headers.remove(AUTHORIZATION);
    headers.insert(X_WX_OPENID.clone(), proxy.openid.clone());
    headers.insert(X_WX_APPID.clone(), proxy.appid.clone());
    let mut parts = Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(proxy.upstream.clone());
    parts.path_and_query = req.uri().path_and_query().cloned();
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                r#"{"error":{"code":"bad_request"}}"#,
            );
        }
    }
    match proxy.client.request(req).await {
        Ok(resp) => resp.map(Either::Left),
        Err(_) => answer(StatusCode::BAD_GATEWAY, UNAVAILABLE),
    }
}

fn answer(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn proxy_from(args: &Args) -> Result<Proxy, String> {
    let value = |name: &str| {
        HeaderValue::try_from(args.get::<String>(name)?).map_err(|e| format!("--{name}: {e}"))
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Ok(Proxy {
        client: Client::builder(TokioExecutor::new()).build(connector),
        upstream: args.get("upstream")?,
        bearer: HeaderValue::try_from(format!("Bearer {}", args.get::<String>("token")?))
            .map_err(|e| format!("--token: {e}"))?,
        openid: value("openid")?,
        appid: value("appid")?,
        log: args.get_or("log", "off".to_owned())? == "on",
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse()?;
    let listen: SocketAddr = args.get("listen")?;
    let proxy = Arc::new(proxy_from(&args)?);
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
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(proxy.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
