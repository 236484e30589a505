//! One worker's connections to the upstreams: an HTTP/1.1 pool per route.
//!
//! Each worker thread owns an [`Upstreams`]: for every route a stack of idle hyper
//! `client::conn::http1` senders, checked out for one request and put back when its
//! response body has been read to the end (an unfinished body closes its connection, as
//! HTTP/1.1 requires). Requests go in origin form over a connection this worker opened
//! with the route's [`connect::Connector`] (TCP, or TLS for `https://`), so nothing
//! crosses a thread and no pool is shared. This module never looks at identity.

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

use super::body::UpstreamBody;
use super::connect::Connector;
use crate::config::RouteConfig;
use crate::http::{Body, BoxError};

/// Idle connections kept per route and worker.
const MAX_IDLE: usize = 512;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How many of the newest idle connections a checkout looks at.
const CHECKOUT_SCAN: usize = 8;

/// Why an upstream request failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("no upstream for route {0}")]
    NoRoute(usize),
}

/// How one route's upstream is reached, and its idle connections on this worker.
pub struct Pool {
    connector: Connector,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// This worker's upstream connections, by route index.
pub struct Upstreams {
    pools: Vec<Arc<Pool>>,
}

impl Upstreams {
    /// Pools for `routes` (in route order).
    pub fn new<'a>(routes: impl Iterator<Item = &'a RouteConfig>) -> Self {
        let pools = routes
            .map(|route| {
                Arc::new(Pool {
                    connector: Connector::new(route),
                    idle: Mutex::new(Vec::new()),
                })
            })
            .collect();
        Self { pools }
    }

    /// Whether route `route` takes origin-form request targets: every configured route
    /// does (its pool speaks HTTP/1.1 to the upstream directly, over TCP or TLS).
    pub fn origin_form(&self, route: usize) -> bool {
        route < self.pools.len()
    }

    fn pool(&self, route: usize) -> Result<&Arc<Pool>, UpstreamError> {
        self.pools.get(route).ok_or(UpstreamError::NoRoute(route))
    }

    /// Send `req` to route `route`'s upstream and wait for the response head.
    pub async fn send(
        &self,
        route: usize,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        self.pool(route)?.send(req).await
    }

    /// Send a WebSocket upgrade request to route `route`'s upstream on a connection of its
    /// own (never pooled: after a 101 it belongs to the tunnel) and wait for the head.
    pub async fn send_upgrade(
        &self,
        route: usize,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        self.pool(route)?.send_upgradable(req).await
    }

    /// Close idle connections that waited longer than the idle timeout, and forget those
    /// their upstream closed.
    pub fn prune(&self) {
        for pool in &self.pools {
            pool.lock()
                .retain(|idle| !idle.sender.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT);
        }
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

    /// A new HTTP/1.1 connection to the upstream, its driver spawned on this worker.
    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let stream = self.connector.connect().await?;
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
                    authority: self.connector.authority().to_string(),
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

fn boxed(body: Incoming) -> Body {
    http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, |e| -> BoxError {
        Box::new(e)
    }))
}

impl Pool {
    /// Send `req` on a fresh connection that can be upgraded, outside the pool.
    async fn send_upgradable(
        &self,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, UpstreamError> {
        let stream = self.connector.connect().await?;
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
