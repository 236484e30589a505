//! Listeners: accept, limit, time out, check framing, serve, drain.
//!
//! The public listener speaks HTTP/1.1 and HTTP/2 (optionally behind rustls), holds at
//! most `max_connections` at once (further clients wait in the kernel's backlog), hands
//! each connection to a [`workers`] thread, wraps it in [`timeouts::TimedIo`] and
//! [`framing::ScannedIo`], refuses smuggling shapes ([`hygiene`]) before the router sees
//! a request, and on shutdown stops accepting, lets in-flight requests finish within
//! `drain_timeout`, then returns. The admin listener runs beside it with the same
//! timeouts and checks and its own `[admin] max_connections`.

pub mod framing;
pub mod hygiene;
pub mod stall;
pub mod timeouts;
pub mod tls;
pub mod workers;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulConnection, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::{Body, BoxError, RequestBody};
use crate::router;
use crate::state::AppState;
use crate::worker::Worker;

use self::framing::{Framing, ScannedIo};
use self::timeouts::{ConnTimeouts, GuardedBody, InFlight, TimedIo};
use self::workers::{Accepted, Workers};
use crate::http::request_body::TimedBody;

/// Bound listeners, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    public: TcpListener,
    admin: TcpListener,
    tls: Option<tls::Tls>,
}

impl Server {
    /// Bind the public and admin listeners from the configuration.
    pub async fn bind(state: Arc<AppState>) -> Result<Self, String> {
        Self::bind_to(
            state.clone(),
            state.config.server.listen,
            state.config.admin.listen,
        )
        .await
    }

    /// Bind explicit addresses (port 0 picks a free port).
    pub async fn bind_to(
        state: Arc<AppState>,
        public: SocketAddr,
        admin: SocketAddr,
    ) -> Result<Self, String> {
        let tls = state
            .config
            .server
            .tls
            .as_ref()
            .map(tls::start)
            .transpose()?;
        let public = TcpListener::bind(public)
            .await
            .map_err(|e| format!("cannot listen on {public}: {e}"))?;
        let admin = TcpListener::bind(admin)
            .await
            .map_err(|e| format!("cannot listen on {admin} (admin): {e}"))?;
        Ok(Self {
            state,
            public,
            admin,
            tls,
        })
    }

    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.local_addr().ok()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    /// Serve until `shutdown` resolves, then drain.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let admin = tokio::spawn(serve_admin(self.state.clone(), self.admin));
        // The TLS pair's watcher lives as long as `tls` does: until serving ends.
        let tls = self.tls;
        let acceptor = tls.as_ref().map(|t| t.acceptor.clone());
        let workers = match Workers::start(workers::count(), &self.state, acceptor) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve");
                admin.abort();
                return;
            }
        };
        let workers = accept_loop(&self.state, self.public, workers, shutdown).await;
        tracing::info!("shutting down: draining in-flight requests");
        workers.drain().await;
        admin.abort();
    }
}

pub(crate) fn http_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // Header and idle timeouts are enforced by `TimedIo` for both protocols; hyper's own
    // HTTP/1 header timer would only add a second timer per request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Accept until `shutdown`, handing each connection to a worker; returns the workers.
async fn accept_loop(
    state: &Arc<AppState>,
    listener: TcpListener,
    mut workers: Workers,
    shutdown: impl Future<Output = ()>,
) -> Workers {
    let slots = Arc::new(Semaphore::new(state.config.server.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            () = &mut shutdown => return workers,
        };
        let Ok(permit) = permit else { return workers };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return workers,
        };
        let _ = stream.set_nodelay(true);
        match stream.into_std() {
            Ok(stream) => workers.dispatch(Accepted {
                stream,
                peer,
                permit,
            }),
            Err(e) => tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker"),
        }
    }
}

/// Serve one accepted public connection (after its TLS handshake, if any) on `worker`.
pub(crate) async fn serve_tcp(
    state: Arc<AppState>,
    worker: Arc<Worker>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
) {
    let trusted = &state.config.server.trusted_proxies;
    let Some(acceptor) = tls else {
        let conn = ConnInfo::new(peer, false, trusted);
        return serve_io(state, worker, stream, conn, builder, watcher).await;
    };
    let handshake = state.config.server.header_read_timeout;
    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            let conn = ConnInfo::new(peer, true, trusted);
            serve_io(state, worker, tls_stream, conn, builder, watcher).await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_io<I>(
    state: Arc<AppState>,
    worker: Arc<Worker>,
    io: I,
    conn: ConnInfo,
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = conn.peer;
    let conn = Arc::new(conn);
    let handle = move |req| router::handle(worker.clone(), req, conn.clone());
    let connection = connection(state, io, peer, &builder, handle);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "connection closed with an error");
    }
}

/// Wrap an accepted stream in its timeouts and framing scan, and serve it with `handle`
/// behind the smuggling check; the connection, ready to be awaited or watched.
fn connection<I, H, F>(
    state: Arc<AppState>,
    io: I,
    peer: SocketAddr,
    builder: &Builder<TokioExecutor>,
    handle: H,
) -> impl GracefulConnection<Error = BoxError> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let server = &state.config.server;
    let timeouts = ConnTimeouts {
        header_read: server.header_read_timeout,
        idle: server.idle_timeout,
        write_stall: server.body_timeout,
    };
    let body_timeout = server.body_timeout;
    let in_flight = Arc::new(InFlight::default());
    let framing = Arc::new(Framing::default());
    let io = TimedIo::new(io, in_flight.clone(), timeouts);
    let io = ScannedIo::new(io, framing.clone());
    let service = service_fn(move |req: Request<Incoming>| {
        let guard = in_flight.enter();
        let tunnel = req.method() == Method::CONNECT;
        let watch = req.version() == Version::HTTP_2;
        let flagged = framing.next_request_is_flagged();
        let pending = match hygiene::check(req.headers(), flagged) {
            Ok(()) => Ok(handle(req.map(|body| TimedBody::new(body, body_timeout)))),
            Err(e) => Err(refuse(&state, e, peer)),
        };
        let framing = framing.clone();
        async move {
            let response = match pending {
                Ok(handled) => handled.await,
                Err(refused) => refused,
            };
            let status = response.status();
            if status == StatusCode::SWITCHING_PROTOCOLS || (tunnel && status.is_success()) {
                framing.set_upgraded();
            }
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard, watch)))
        }
    });
    builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned()
}

/// Answer a request whose framing was refused; it never reaches a handler.
fn refuse(state: &AppState, error: GatewayError, peer: SocketAddr) -> Response<Body> {
    tracing::info!(
        target: "wxgate::access",
        peer = %peer.ip(),
        status = 400,
        reason = %error,
        "request refused before routing"
    );
    state.metrics.record_request(&state.labels.none, 400);
    error.into_response()
}

/// The admin listener: at most `[admin] max_connections` at once (the rest wait in the
/// kernel's backlog, holding none of the process's file descriptors).
async fn serve_admin(state: Arc<AppState>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(state.config.admin.max_connections));
    let builder = http_builder();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin_state = state.clone();
        let handle = move |req| admin::handle(admin_state.clone(), req, peer.ip());
        let connection = connection(state.clone(), stream, peer, &builder, handle);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "admin connection closed with an error");
            }
            drop(permit);
        });
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed by this call, before the
/// returned future is first polled, so a signal that arrives while the listeners are
/// starting up is not the default action (termination) but a graceful shutdown.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            let (Ok(mut term), Ok(mut int)) = handlers else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
