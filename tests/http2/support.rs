//! Clients for the HTTP/2 tests: hyper's h2c client on one connection ([`H2`]), request
//! bodies whole or streamed in chunks, reqwest with prior knowledge, and curl
//! `--http2-prior-knowledge` when it is on PATH (missing, it skips with a note, unless `CI`
//! is set: then it fails).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

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

    /// Whether the connection can still take a request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Another handle on this connection (for concurrent or hand-driven requests).
    pub fn clone_sender(&self) -> SendRequest<ReqBody> {
        self.sender.clone()
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

/// reqwest speaking h2c with prior knowledge.
pub fn reqwest_h2() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
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

/// A request body fed from the test, one data frame per message.
pub fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, ReqBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, ChannelBody(rx).boxed())
}

struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// One HTTP/2 frame off the wire.
#[derive(Debug)]
pub struct RawFrame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const GOAWAY: u8 = 7;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;

/// An HTTP/2 connection spoken frame by frame, for what a client library will not send.
pub struct RawH2 {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawH2 {
    /// Connect and send the preface and an empty SETTINGS frame.
    pub async fn connect(addr: SocketAddr) -> RawH2 {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .expect("preface");
        let mut raw = RawH2 {
            tcp,
            buf: Vec::new(),
        };
        raw.send(SETTINGS, 0, 0, &[]).await;
        raw
    }

    /// Send one frame; false when the server has closed the connection.
    pub async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> bool {
        let len = u32::try_from(payload.len())
            .expect("frame length")
            .to_be_bytes();
        let mut frame = len[1..].to_vec();
        frame.extend([kind, flags]);
        frame.extend(stream.to_be_bytes());
        frame.extend(payload);
        self.tcp.write_all(&frame).await.is_ok()
    }

    /// Frames until `stop` holds for one, the connection ends, or `timeout` passes.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        mut stop: impl FnMut(&RawFrame) -> bool,
    ) -> (Vec<RawFrame>, bool) {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            while self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() < 9 + len {
                    break;
                }
                let head: Vec<u8> = self.buf.drain(..9 + len).collect();
                let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let frame = RawFrame {
                    kind: head[3],
                    flags: head[4],
                    stream: id,
                    payload: head[9..].to_vec(),
                };
                let done = stop(&frame);
                frames.push(frame);
                if done {
                    return (frames, false);
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (frames, true),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return (frames, false),
            }
        }
    }
}

/// An HPACK header block of literal fields (never indexed, no Huffman).
pub fn hpack(fields: &[(&str, &str)]) -> Vec<u8> {
    fn int(out: &mut Vec<u8>, mut n: usize) {
        if n < 127 {
            out.push(n as u8);
            return;
        }
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x10);
        int(&mut out, name.len());
        out.extend(name.as_bytes());
        int(&mut out, value.len());
        out.extend(value.as_bytes());
    }
    out
}

/// The settings (identifier, value) of a SETTINGS frame's payload.
pub fn settings(payload: &[u8]) -> Vec<(u16, u32)> {
    payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect()
}
