//! An echo upstream: records every request (method, URI, version, headers with duplicates,
//! body) and answers 200 with a JSON echo of it. Paths ending in a few words behave
//! specially: `/slow` (sleeps `?ms=`, default 1500), `/stream` (first chunk at once, the
//! last only when the test calls `release_stream` or after `?auto_ms=`), `/upload` (tells the
//! test when the first request-body chunk arrives), `/custom` (status `?status=`, custom
//! headers and a binary body) and `/hop` (hop-by-hop response headers).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::fake_wechat::parse_query;
use super::{TestBody, full, spawn_server};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub version: String,
    /// Lower-cased names as hyper gives them, duplicates kept, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// Every value of `name` (case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Everything recorded, as text (for leak scans).
    pub fn dump(&self) -> String {
        let mut out = format!("{} {} {}\n", self.method, self.uri, self.version);
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push_str(&String::from_utf8_lossy(&self.body));
        out
    }
}

#[derive(Default)]
struct EchoState {
    records: Mutex<Vec<Recorded>>,
    stream_gate: Notify,
    upload_first_chunk: Notify,
}

/// Handle to a running echo upstream; the server stops when this is dropped.
pub struct Echo {
    pub url: String,
    state: Arc<EchoState>,
    task: JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub async fn start() -> Echo {
        let state = Arc::new(EchoState::default());
        let st = state.clone();
        let (addr, task) = spawn_server(move |req| handle(st.clone(), req)).await;
        Echo {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Every request recorded so far.
    pub fn records(&self) -> Vec<Recorded> {
        self.state.records.lock().unwrap().clone()
    }

    /// How many requests were recorded.
    pub fn count(&self) -> usize {
        self.state.records.lock().unwrap().len()
    }

    /// The last request recorded (panics if none).
    pub fn last(&self) -> Recorded {
        self.records()
            .pop()
            .expect("the upstream received no request")
    }

    /// Let a `/stream` response send its last chunk.
    pub fn release_stream(&self) {
        self.state.stream_gate.notify_one();
    }

    /// Wait until an `/upload` request's first body chunk has arrived; false on timeout.
    #[must_use = "assert the outcome: a wait that timed out must fail the test"]
    pub async fn upload_first_chunk(&self, timeout: Duration) -> bool {
        let wait = self.state.upload_first_chunk.notified();
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Wait until at least `n` requests are recorded; false on timeout.
    #[must_use = "assert the outcome: a wait that timed out must fail the test"]
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.count() >= n).await
    }
}

/// A loopback port where nothing listens, held for as long as this lives: a socket bound
/// to it and never listening, so a connect is refused and no other process can take it.
pub struct Refused {
    pub url: String,
    _socket: tokio::net::TcpSocket,
}

/// A [`Refused`] port (connection refused for as long as the guard lives).
pub fn refused() -> Refused {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("the bound address");
    Refused {
        url: format!("http://{addr}"),
        _socket: socket,
    }
}

async fn handle(state: Arc<EchoState>, req: Request<Incoming>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = parse_query(parts.uri.query().unwrap_or(""));
    let body = read_body(&state, body, path.ends_with("/upload")).await;
    let rec = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    state.records.lock().unwrap().push(rec.clone());
    let num = |k: &str, d: u64| q.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_millis(num("ms", 1500))).await;
    }
    if path.ends_with("/stream") {
        return stream_response(state, num("auto_ms", 0));
    }
    if path.ends_with("/custom") {
        return custom_response(num("status", 201) as u16);
    }
    let mut builder = Response::builder().status(200);
    if path.ends_with("/hop") {
        builder = builder
            .header("connection", "x-hop-resp")
            .header("x-hop-resp", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("x-end-to-end", "1");
    }
    builder
        .header("content-type", "application/json")
        .body(full(echo_json(&rec)))
        .unwrap()
}

/// Read the whole request body; for uploads, signal the test on the first data chunk.
async fn read_body(state: &EchoState, mut body: Incoming, signal_first: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut signalled = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if signal_first && !signalled && !data.is_empty() {
                state.upload_first_chunk.notify_one();
                signalled = true;
            }
        }
    }
    out
}

fn echo_json(rec: &Recorded) -> String {
    json!({
        "method": rec.method,
        "uri": rec.uri,
        "headers": rec.headers,
        "body": String::from_utf8_lossy(&rec.body),
    })
    .to_string()
}

/// 201 (or `status`) with custom headers, two Set-Cookie and a binary body.
fn custom_response(status: u16) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("x-custom", "custom-value")
        .header("set-cookie", "a=1")
        .header("set-cookie", "b=2")
        .header("content-type", "application/x-custom")
        .body(full(Bytes::from_static(b"custom-body\x00\xff\x01")))
        .unwrap()
}

/// `first-chunk\n` now, `last-chunk\n` after the gate opens (or `auto_ms`, or 10 s).
fn stream_response(state: Arc<EchoState>, auto_ms: u64) -> Response<TestBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let _ = tx.send(Bytes::from_static(b"first-chunk\n")).await;
        if auto_ms > 0 {
            tokio::time::sleep(Duration::from_millis(auto_ms)).await;
        } else {
            let gate = state.stream_gate.notified();
            let _ = tokio::time::timeout(Duration::from_secs(10), gate).await;
        }
        let _ = tx.send(Bytes::from_static(b"last-chunk\n")).await;
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(ChannelBody(rx).boxed())
        .unwrap()
}

/// A response body fed by a channel, one data frame per message.
struct ChannelBody(mpsc::Receiver<Bytes>);

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
