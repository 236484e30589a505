//! Listeners: accept, limit, time out, serve, drain.
//!
//! The public listener speaks HTTP/1.1 and HTTP/2 (optionally behind rustls), holds at
//! most `max_connections` at once (further clients wait in the kernel's backlog), hands
//! each connection to a [`workers`] thread, wraps it in [`timeouts::TimedIo`], and on
//! shutdown stops accepting, lets in-flight requests finish within `drain_timeout`, then
//! returns. The admin listener runs beside it.

pub mod timeouts;
pub mod tls;
pub mod workers;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::router::{self, ConnInfo};
use crate::state::AppState;

use self::timeouts::{GuardedBody, InFlight, TimedBody, TimedIo};
use self::workers::{Accepted, Workers};

/// Bound listeners, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    public: TcpListener,
    admin: TcpListener,
    tls: Option<TlsAcceptor>,
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
            .map(tls::acceptor)
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
        let workers = match Workers::start(workers::count(), &self.state, self.tls) {
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

pub(crate) async fn serve_tcp(
    state: Arc<AppState>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
) {
    let Some(acceptor) = tls else {
        return serve_io(
            state,
            stream,
            ConnInfo { peer, tls: false },
            builder,
            watcher,
        )
        .await;
    };
    let handshake = state.config.server.header_read_timeout;
    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            serve_io(
                state,
                tls_stream,
                ConnInfo { peer, tls: true },
                builder,
                watcher,
            )
            .await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_io<I>(
    state: Arc<AppState>,
    io: I,
    conn: ConnInfo,
    builder: Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = Arc::new(InFlight::default());
    let server = &state.config.server;
    let io = TimedIo::new(
        io,
        in_flight.clone(),
        server.header_read_timeout,
        server.idle_timeout,
    );
    let body_timeout = server.body_timeout;
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let guard = in_flight.enter();
        let state = state.clone();
        let req = req.map(|body| TimedBody::new(body, body_timeout));
        async move {
            let response = router::handle(state, req, conn).await;
            Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
        }
    });
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(peer = %conn.peer, error = %e, "connection closed with an error");
    }
}

async fn serve_admin(state: Arc<AppState>, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let body_timeout = state.config.server.body_timeout;
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let state = state.clone();
                let req = req.map(|body| TimedBody::new(body, body_timeout));
                async move { Ok::<_, Infallible>(admin::handle(state, req, peer.ip()).await) }
            });
            let _ = http_builder()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
