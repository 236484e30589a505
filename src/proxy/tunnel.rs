//! WebSocket tunnels: an HTTP/1.1 `Upgrade: websocket` request, once its upstream answers
//! 101, becomes two connections spliced both ways.
//!
//! [`websocket_protocol`] tells an upgrade request from any other (only `websocket` is
//! let through: an `h2c` or other upgrade would let a client speak past the gateway's
//! per-request checks, so it is stripped like every hop-by-hop header). [`Tunnel::splice`]
//! waits for both sides' upgrades and copies bytes until either side closes or no byte
//! moves either way for `[server] idle_timeout`. Every open tunnel holds its client
//! connection's `max_connections` slot and is counted in [`Tunnels`], which drain waits
//! on and `/metrics` shows. This module never reads a frame: what flows is the
//! upstream's business.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::conn::ConnInfo;
use crate::metrics::Metrics;

mod activity;

use self::activity::{Activity, Watched};

/// How long the client may take to complete its side of the upgrade once the 101 is on
/// its way (hyper hands the connection over as soon as the head is written).
const CLIENT_UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Upgrade` value of a WebSocket upgrade request, or `None` for any other request:
/// HTTP/1.1, `Connection` listing `upgrade`, and `Upgrade` naming `websocket`.
pub fn websocket_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let upgrade = req.headers().get(header::UPGRADE)?;
    let names_websocket = upgrade
        .as_bytes()
        .split(|b| *b == b',')
        .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    (names_websocket && lists_upgrade(req.headers())).then(|| upgrade.clone())
}

/// Whether the `Connection` header(s) list the `upgrade` token.
fn lists_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    })
}

/// Put back the two headers an upgrade needs on its next hop (`Connection: upgrade` and
/// the `Upgrade` value), after hop-by-hop stripping removed them.
pub fn restore_upgrade_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// The open tunnels of one worker: counted for drain and for the metrics gauge.
pub struct Tunnels {
    open: AtomicUsize,
    closed: Notify,
    metrics: Arc<Metrics>,
}

impl Tunnels {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            metrics,
        }
    }

    /// Count one tunnel open until the returned guard is dropped.
    fn open(self: &Arc<Self>) -> OpenTunnel {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.metrics.websocket_opened();
        OpenTunnel(self.clone())
    }

    /// How many tunnels are open on this worker.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once no tunnel is open on this worker.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.closed.notified();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One open tunnel, as [`Tunnels`] counts it.
struct OpenTunnel(Arc<Tunnels>);

impl Drop for OpenTunnel {
    fn drop(&mut self) {
        self.0.metrics.websocket_closed();
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// Both halves of an accepted upgrade, ready to be spliced once the 101 is written.
pub struct Tunnel {
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    route: Arc<str>,
    /// Holds the client connection's `max_connections` slot while the tunnel is open.
    conn: Arc<ConnInfo>,
    open: OpenTunnel,
}

impl Tunnel {
    /// A tunnel between `client` and `upstream`, counted in `tunnels` from now on.
    pub fn new(
        client: OnUpgrade,
        upstream: OnUpgrade,
        idle: Duration,
        route: Arc<str>,
        conn: Arc<ConnInfo>,
        tunnels: &Arc<Tunnels>,
    ) -> Self {
        Self {
            client,
            upstream,
            idle,
            route,
            conn,
            open: tunnels.open(),
        }
    }

    /// Wait for both upgrades, then copy both ways until either side closes, either side
    /// fails, or nothing moves for the idle timeout.
    pub async fn splice(self) {
        let peer = self.conn.peer;
        let route = self.route;
        let client = match tokio::time::timeout(CLIENT_UPGRADE_TIMEOUT, self.client).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(e)) => {
                return tracing::debug!(%peer, %route, error = %e, "client upgrade failed");
            }
            Err(_) => return tracing::debug!(%peer, %route, "client upgrade timed out"),
        };
        let upstream = match self.upstream.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                return tracing::warn!(%peer, %route, error = %e, "upstream upgrade failed");
            }
        };
        let activity = Activity::new();
        let client = Watched::new(TokioIo::new(client), &activity);
        let upstream = Watched::new(TokioIo::new(upstream), &activity);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
        // The tunnel ends when either side ends (as nginx's does): a WebSocket has no use
        // for a half-closed connection, and a client that never closes its side after the
        // upstream closed must not hold a slot.
        let ended = tokio::select! {
            up = pass(&mut client_read, &mut upstream_write) => up.map(|n| ("client", n)),
            down = pass(&mut upstream_read, &mut client_write) => down.map(|n| ("upstream", n)),
            () = activity.idle_for(self.idle) => {
                tracing::debug!(%peer, %route, idle = ?self.idle, "websocket idle; closed");
                return;
            }
        };
        match ended {
            Ok((side, bytes)) => tracing::debug!(%peer, %route, side, bytes, "websocket closed"),
            Err(e) => tracing::debug!(%peer, %route, error = %e, "websocket ended"),
        }
        drop(self.open);
    }
}

/// Copy `from` to `to` until `from` ends, then shut `to`'s write side; the bytes copied.
async fn pass<R, W>(from: &mut R, to: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let copied = tokio::io::copy(from, to).await?;
    to.shutdown().await?;
    Ok(copied)
}

#[cfg(test)]
mod tests;
