//! Clients for the HTTP/2 tests: hyper's h2c client on one connection ([`H2`]), request
//! bodies whole or streamed in chunks, reqwest with prior knowledge, and curl
//! `--http2-prior-knowledge` when it is on PATH (missing, it skips with a note, unless `CI`
//! is set: then it fails).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Resp, assert_error_body};

/// The request body type of [`H2`].
pub type ReqBody = BoxBody<Bytes, Infallible>;

/// A whole body (hyper's client declares its Content-Length).
pub fn full_body(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

/// A body of `total` bytes sent in `chunk`-sized frames, of unknown length (no
/// Content-Length goes out).
pub fn chunks(total: usize, chunk: usize) -> ReqBody {
    Chunks { left: total, chunk }.boxed()
}

struct Chunks {
    left: usize,
    chunk: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'z'; n])))))
    }
}

/// One h2c (prior knowledge) connection to the gateway, driven by hyper's client.
pub struct H2 {
    pub addr: SocketAddr,
    sender: SendRequest<ReqBody>,
}

impl H2 {
    pub async fn connect(addr: SocketAddr) -> H2 {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::over(addr, tcp).await
    }

    /// An h2 connection over an already connected stream (TLS after ALPN h2, say).
    pub async fn over<T>(addr: SocketAddr, io: T) -> H2
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        H2 { addr, sender }
    }

    /// `method path` with an optional bearer token and a body.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: ReqBody,
    ) -> Resp {
        let mut req = self.request(method, path).body(body).expect("request");
        if let Some(t) = token {
            let value = format!("Bearer {t}").parse().expect("header value");
            req.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        self.fetch(req).await
    }

    /// A request builder for `path` on this connection (scheme and authority set).
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, None, full_body(Bytes::new()))
            .await
    }

    /// Send and read the whole answer; panics on a stream or connection error.
    pub async fn fetch(&mut self, req: Request<ReqBody>) -> Resp {
        let what = format!("{} {}", req.method(), req.uri());
        self.try_fetch(req)
            .await
            .unwrap_or_else(|e| panic!("{what} over h2 failed: {e}"))
    }

    /// Send and read the whole answer, or the error that ended the stream.
    pub async fn try_fetch(&mut self, req: Request<ReqBody>) -> Result<Resp, hyper::Error> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        assert_eq!(
            resp.version(),
            http::Version::HTTP_2,
            "not answered over h2"
        );
        let status = resp.status().as_u16();
        let headers: HeaderMap = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

/// Whether curl is on PATH; panics when it is not and `CI` is set.
pub fn curl_present() -> bool {
    let found = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but curl is not installed: the HTTP/2 curl checks must not skip"
        );
        eprintln!("NOTE: curl not found; skipping its checks (set CI to fail instead)");
    }
    found
}

/// What one curl run gave.
pub struct CurlOut {
    pub exit: Option<i32>,
    pub status: u16,
    pub version: String,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CurlOut {
    /// curl succeeded over HTTP/2 and got the contract's JSON error.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(
            self.exit,
            Some(0),
            "{what}: curl failed: {} (body {body:?})",
            self.stderr
        );
        assert_eq!(self.version, "2", "{what}: not HTTP/2");
        assert_eq!(self.status, status, "{what}: {body}");
        let value: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
        assert_error_body(&value, code);
    }
}

/// `curl --http2-prior-knowledge` with `args` (and `stdin` fed to it); None when curl is
/// not installed (see [`curl_present`]).
pub async fn curl_h2(args: &[&str], stdin: Option<Vec<u8>>) -> Option<CurlOut> {
    if !curl_present() {
        return None;
    }
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--http2-prior-knowledge",
        "--noproxy",
        "*",
        "--max-time",
        "10",
    ])
    .args(["-w", "\n%{http_code} %{http_version}"])
    .args(args)
    .stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn curl");
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
        });
    }
    let out = child.wait_with_output().await.expect("curl output");
    let text = out.stdout;
    let split = text.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let tail = String::from_utf8_lossy(&text[split..]).trim().to_string();
    let (status, version) = tail.split_once(' ').unwrap_or(("0", ""));
    Some(CurlOut {
        exit: out.status.code(),
        status: status.parse().unwrap_or(0),
        version: version.to_string(),
        body: text[..split].to_vec(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
