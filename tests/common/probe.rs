//! A test upstream that reports what became of each request body (read to its end, or
//! broken off part way) and of each streamed response body (sent whole, or dropped part
//! way because the gateway let go of it). `/big?bytes=N` streams N bytes in 64 KiB chunks
//! (produced lazily, so a large N costs only what is actually sent); every other path reads
//! the whole request body and answers 200 `received N bytes`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use tokio::task::JoinHandle;

use super::fake_wechat::parse_query;
use super::{TestBody, full, spawn_server};

/// What became of one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyOutcome {
    /// Read to its end: these bytes.
    Complete(Vec<u8>),
    /// Broken off (the gateway aborted the request) after this many bytes.
    Broken(usize),
}

/// One `/big` response stream, as far as it got.
#[derive(Debug, Default)]
pub struct Stream {
    /// Bytes handed to hyper so far.
    pub sent: AtomicU64,
    /// Every byte was handed over.
    pub finished: AtomicBool,
    /// The body was dropped before its end (the connection to the gateway went away).
    pub dropped: AtomicBool,
}

#[derive(Default)]
struct ProbeState {
    heads: AtomicU64,
    bodies: Mutex<Vec<BodyOutcome>>,
    streams: Mutex<Vec<Arc<Stream>>>,
}

/// Handle to a running probe upstream; the server stops when this is dropped.
pub struct Probe {
    pub url: String,
    state: Arc<ProbeState>,
    task: JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    pub async fn start() -> Probe {
        let state = Arc::new(ProbeState::default());
        let st = state.clone();
        let (addr, task) = spawn_server(move |req| handle(st.clone(), req)).await;
        Probe {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// How many request heads arrived (whatever became of their bodies).
    pub fn heads(&self) -> u64 {
        self.state.heads.load(Ordering::SeqCst)
    }

    /// The outcome of every request body that has ended, in order.
    pub fn bodies(&self) -> Vec<BodyOutcome> {
        self.state.bodies.lock().unwrap().clone()
    }

    /// How many request bodies were read to their end.
    pub fn completed(&self) -> usize {
        self.bodies()
            .iter()
            .filter(|b| matches!(b, BodyOutcome::Complete(_)))
            .count()
    }

    /// Wait until `n` request bodies have ended (either way); false on timeout.
    #[must_use = "assert the outcome: a wait that timed out must fail the test"]
    pub async fn wait_bodies(&self, n: usize, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.bodies().len() >= n).await
    }

    /// Every `/big` stream so far.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.state.streams.lock().unwrap().clone()
    }

    /// Wait until the first `/big` stream was dropped before its end; false on timeout.
    #[must_use = "assert the outcome: a wait that timed out must fail the test"]
    pub async fn wait_stream_dropped(&self, timeout: Duration) -> bool {
        super::wait_until(timeout, || {
            self.streams()
                .first()
                .is_some_and(|s| s.dropped.load(Ordering::SeqCst))
        })
        .await
    }
}

async fn handle(state: Arc<ProbeState>, req: Request<Incoming>) -> Response<TestBody> {
    state.heads.fetch_add(1, Ordering::SeqCst);
    let q = parse_query(req.uri().query().unwrap_or(""));
    if req.uri().path().ends_with("/big") {
        let total = q
            .get("bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20);
        let stream = Arc::new(Stream::default());
        state.streams.lock().unwrap().push(stream.clone());
        let body = BigBody {
            left: total,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
            stream,
        };
        return Response::builder()
            .header("content-type", "application/octet-stream")
            .header("content-length", total.to_string())
            .body(body.boxed())
            .unwrap();
    }
    let mut body = req.into_body();
    let mut got = Vec::new();
    let outcome = loop {
        match body.frame().await {
            None => break BodyOutcome::Complete(got),
            Some(Err(_)) => break BodyOutcome::Broken(got.len()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    got.extend_from_slice(&data);
                }
            }
        }
    };
    let text = match &outcome {
        BodyOutcome::Complete(b) => format!("received {} bytes", b.len()),
        BodyOutcome::Broken(n) => format!("broken after {n} bytes"),
    };
    state.bodies.lock().unwrap().push(outcome);
    Response::new(full(text))
}

/// `left` more bytes, 64 KiB at a time; notes in `stream` how far it got.
struct BigBody {
    left: u64,
    chunk: Bytes,
    stream: Arc<Stream>,
}

impl Body for BigBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            self.stream.finished.store(true, Ordering::SeqCst);
            return Poll::Ready(None);
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        self.stream.sent.fetch_add(n, Ordering::SeqCst);
        if self.left == 0 {
            self.stream.finished.store(true, Ordering::SeqCst);
        }
        let data = self.chunk.slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Drop for BigBody {
    fn drop(&mut self) {
        if self.left > 0 {
            self.stream.dropped.store(true, Ordering::SeqCst);
        }
    }
}
