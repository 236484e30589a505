//! Opening one connection to a route's upstream: TCP (bounded connect, no Nagle), then
//! for an `https://` upstream a rustls handshake with SNI = the upstream host, ALPN
//! `http/1.1`, verified with the route's client config (built once at config load).
//! It never pools, never retries and never looks at a request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::UpstreamError;
use crate::config::RouteConfig;

/// How long opening a connection to an upstream may take (TCP, then TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens connections to one route's upstream.
pub struct Connector {
    /// `host:port`, what the connection is opened to.
    authority: String,
    tls: Option<Tls>,
}

struct Tls {
    connector: TlsConnector,
    /// `None` when the host is no valid name (the config check refuses such routes).
    name: Option<ServerName<'static>>,
}

/// A connection to an upstream, plain or TLS.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connector {
    pub fn new(route: &RouteConfig) -> Self {
        let uri = &route.upstream;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = route.tls.as_ref().map(|config| Tls {
            connector: TlsConnector::from(Arc::clone(config)),
            name: ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                .ok()
                .map(|n| n.to_owned()),
        });
        Self {
            authority: format!("{host}:{port}"),
            tls,
        }
    }

    /// `host:port` of the upstream.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// A new connection, its TLS handshake done for an `https://` upstream.
    pub async fn connect(&self) -> Result<UpstreamStream, UpstreamError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .unwrap_or_else(|_| Err(self.connect_error(io::ErrorKind::TimedOut.into())))
    }

    async fn open(&self) -> Result<UpstreamStream, UpstreamError> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| self.connect_error(e))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        let tls_error = |source| UpstreamError::Tls {
            authority: self.authority.clone(),
            source,
        };
        let name = tls.name.clone().ok_or_else(|| {
            tls_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the host is not a valid TLS server name",
            ))
        })?;
        let stream = tls.connector.connect(name, tcp).await.map_err(tls_error)?;
        Ok(UpstreamStream::Tls(Box::new(stream)))
    }

    fn connect_error(&self, source: io::Error) -> UpstreamError {
        UpstreamError::Connect {
            authority: self.authority.clone(),
            source,
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
