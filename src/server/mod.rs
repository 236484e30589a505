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
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulConnection, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
use crate::http::linger::{self, LingeringBody};
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

/// The most bytes of request head either protocol takes: HTTP/1's read buffer (hyper
/// answers a longer head 431 with no body and closes, as it does past 100 header fields)
/// and HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE` (what a header block decodes to, 32 bytes
/// counted per field; h2 answers 431 or resets the stream, and stops buffering a block of
/// HEADERS and CONTINUATION frames there, so a CONTINUATION flood costs no memory). 64 KiB
/// is four times nginx's 4 x 8k default, ample for cookies and tokens, and bounds what
/// `MAX_CONCURRENT_STREAMS` header blocks can pin.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// HTTP/2 streams one connection may have open at once (nginx's default; hyper's is 200).
/// More is refused (REFUSED_STREAM) and each refusal counts toward
/// `MAX_LOCAL_ERROR_RESETS`.
pub const MAX_CONCURRENT_STREAMS: u32 = 128;

/// Streams a client may open and reset before the server accepted them (the HTTP/2
/// rapid-reset attack, CVE-2023-44487); past this the connection gets GOAWAY
/// ENHANCE_YOUR_CALM. The h2 crate's own default, stated so it cannot silently change.
pub const MAX_PENDING_ACCEPT_RESETS: usize = 20;

/// Streams the server may reset because of the client's own errors (malformed frames,
/// refused streams) before it ends the connection with GOAWAY: the "MadeYouReset" defence
/// (CVE-2025-8671). Twice `MAX_CONCURRENT_STREAMS`: no well-behaved client comes near it.
pub const MAX_LOCAL_ERROR_RESETS: usize = 2 * MAX_CONCURRENT_STREAMS as usize;

/// Flow-control window of one HTTP/2 request body: how much of it the gateway holds before
/// a handler reads it. A quarter of the default `max_body_bytes` (1 MiB), so no single body
/// that will be refused is buffered whole, yet wide enough (at 50 ms RTT, 5 MB/s) for an
/// upload streamed to an upstream.
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// Flow-control window shared by all request bodies of one connection: one default
/// `max_body_bytes` of unread upload per connection, however many streams it opens.
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Response bytes buffered per HTTP/2 stream while the client's window or socket is full
/// (hyper's default is 400 KiB): `MAX_CONCURRENT_STREAMS` streams then pin at most 16 MiB
/// per connection until the stall watch cuts a client that stopped reading.
pub const MAX_SEND_BUFFER: usize = 128 * 1024;

/// The connection builder of both listeners, HTTP/1.1 and HTTP/2 with the limits above.
pub(crate) fn http_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // Header and idle timeouts are enforced by `TimedIo` for both protocols; hyper's own
    // HTTP/1 header timer would only add a second timer per request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    // No keep-alive PINGs: `TimedIo`'s idle clock closes idle connections, and a client
    // that stops reading is cut off by the stall watch, not by a missing PONG.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESETS)
        .adaptive_window(false)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(MAX_SEND_BUFFER)
        .keep_alive_interval(None);
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
    accepted: (TcpStream, SocketAddr, OwnedSemaphorePermit),
    tls: Option<TlsAcceptor>,
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
) {
    let (stream, peer, slot) = accepted;
    let trusted = &state.config.server.trusted_proxies;
    let Some(acceptor) = tls else {
        let conn = ConnInfo::new(peer, false, trusted).holding(slot);
        return serve_io(state, worker, stream, conn, builder, watcher).await;
    };
    let handshake = state.config.server.header_read_timeout;
    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            let conn = ConnInfo::new(peer, true, trusted).holding(slot);
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
            Ok(()) => Ok(handle(req.map(|body| {
                let hold = (watch && !body.is_end_stream()).then(|| linger_hold(&in_flight));
                TimedBody::new(LingeringBody::new(body, hold), body_timeout)
            }))),
            Err(e) => Err(refuse(&state, e, peer)),
        };
        let framing = framing.clone();
        let upgraded = in_flight.clone();
        async move {
            let response = match pending {
                Ok(handled) => handled.await,
                Err(refused) => refused,
            };
            let status = response.status();
            if status == StatusCode::SWITCHING_PROTOCOLS || (tunnel && status.is_success()) {
                framing.set_upgraded();
                upgraded.set_upgraded();
            }
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard, watch)))
        }
    });
    builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned()
}

/// What keeps a connection busy while an HTTP/2 request body lingers ([`linger`]).
fn linger_hold(in_flight: &Arc<InFlight>) -> linger::Hold {
    Box::new(in_flight.enter())
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
