//! One worker's connections to the upstreams: an HTTP/1.1 pool per `http://` route.
//!
//! Each worker thread owns an [`Upstreams`]: for every plain-HTTP route a stack of idle
//! hyper `client::conn::http1` senders, checked out for one request and put back when its
//! response body has been read to the end (an unfinished body closes its connection, as
//! HTTP/1.1 requires). Requests go in origin form over a connection this worker opened,
//! so nothing crosses a thread and no pool is shared. `https://` routes go through a
//! pooled rustls client of this worker's own. This module never looks at identity.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;
use crate::http::{Body, BoxError};

/// Idle connections kept per route and worker.
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many of the newest idle connections a checkout looks at.
const CHECKOUT_SCAN: usize = 8;
/// How long opening a connection to an upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upstream request failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error(transparent)]
    Tls(#[from] hyper_util::client::legacy::Error),
}

/// Where one route's upstream is, and its idle connections on this worker.
struct Pool {
    /// `host:port`, what the connection is opened to.
    authority: String,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// How a route reaches its upstream from this worker.
enum Way {
    Plain(Arc<Pool>),
    Tls,
}

/// This worker's upstream connections, by route index.
pub struct Upstreams {
    ways: Vec<Way>,
    tls: crate::http::Client<UpstreamBody>,
}

impl Upstreams {
    /// Pools for routes whose upstream URIs are `upstreams` (in route order).
    pub fn new<'a>(upstreams: impl Iterator<Item = &'a http::Uri>) -> Self {
        let ways = upstreams
            .map(|uri| match (uri.scheme_str(), uri.authority()) {
                (Some("http"), Some(authority)) => Way::Plain(Arc::new(Pool {
                    authority: with_port(authority),
                    idle: Mutex::new(Vec::new()),
                })),
                _ => Way::Tls,
            })
            .collect();
        Self {
            ways,
            tls: crate::http::client(false),
        }
    }

    /// Whether route `route` takes origin-form request targets (a plain-HTTP pool); the
    /// others take absolute URIs.
    pub fn origin_form(&self, route: usize) -> bool {
        matches!(self.ways.get(route), Some(Way::Plain(_)))
    }

    /// Send `req` to route `route`'s upstream and wait for the response head.
    pub async fn send(
        &self,
        route: usize,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        match self.ways.get(route) {
            Some(Way::Plain(pool)) => pool.send(req).await,
            Some(Way::Tls) | None => {
                let response = self.tls.request(req).await?;
                Ok(response.map(boxed))
            }
        }
    }

    /// Send a WebSocket upgrade request to route `route`'s upstream on a connection of its
    /// own (never pooled: after a 101 it belongs to the tunnel) and wait for the head.
    pub async fn send_upgrade(
        &self,
        route: usize,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        match self.ways.get(route) {
            Some(Way::Plain(pool)) => pool.send_upgradable(req).await,
            Some(Way::Tls) | None => {
                let response = self.tls.request(req).await?;
                Ok(response.map(boxed))
            }
        }
    }

    /// Close idle connections that waited longer than the idle timeout, and forget those
    /// their upstream closed.
    pub fn prune(&self) {
        for way in &self.ways {
            if let Way::Plain(pool) = way {
                pool.lock()
                    .retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT);
            }
        }
    }
}

fn boxed(body: Incoming) -> Body {
    http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, |e| -> BoxError {
        Box::new(e)
    }))
}

/// `host:port`, the default port filled in.
fn with_port(authority: &http::uri::Authority) -> String {
    match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None => format!("{}:80", authority.host()),
    }
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection ready for a request, looking at the newest few. One whose
    /// previous request is still sending its body (the upstream answered early) is left
    /// where it is rather than waited for; closed and expired ones are dropped on the way.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.lock();
        let mut i = idle.len();
        let oldest_looked_at = i.saturating_sub(CHECKOUT_SCAN);
        while i > oldest_looked_at {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || entry.since.elapsed() >= IDLE_TIMEOUT {
                idle.remove(i);
            } else if entry.sender.is_ready() {
                return Some(idle.remove(i).sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<UpstreamBody>) {
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Open a TCP connection to the upstream within the connect timeout.
    async fn open(&self) -> Result<TcpStream, UpstreamError> {
        let connect_error = |source| UpstreamError::Connect {
            authority: self.authority.clone(),
            source,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| connect_error(std::io::ErrorKind::TimedOut.into()))?
            .map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let stream = self.open().await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }

    /// Send on an idle connection, or a new one. A request that a reused connection could
    /// not take (it closed meanwhile) is sent again on a fresh one.
    async fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(sender) => (sender, true),
                // Boxed: a connect is rare, and its future would make every request's larger.
                None => (Box::pin(self.connect()).await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Connect {
                    authority: self.authority.clone(),
                    source: std::io::ErrorKind::ConnectionReset.into(),
                });
            }
            match sender.try_send_request(req).await {
                Ok(response) => {
                    let home = Some((sender, self.clone()));
                    return Ok(response.map(|inner| {
                        let mut pooled = PooledBody { inner, home };
                        if pooled.inner.is_end_stream() {
                            pooled.release();
                        }
                        Body::new(pooled)
                    }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }
}

impl Pool {
    /// Send `req` on a fresh connection that can be upgraded, outside the pool.
    async fn send_upgradable(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        let stream = self.open().await?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection closed with an error");
            }
        });
        let response = sender.send_request(req).await?;
        Ok(response.map(boxed))
    }
}

/// A response body that hands its connection back to the pool once read to the end.
struct PooledBody {
    inner: Incoming,
    home: Option<(SendRequest<UpstreamBody>, Arc<Pool>)>,
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.home = None,
            Poll::Ready(Some(Ok(_))) | Poll::Pending => {}
        }
        polled.map_err(|e| -> BoxError { Box::new(e) })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // hyper's server may not poll a body it already knows is finished
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.home.take() {
            pool.checkin(sender);
        }
    }
}
