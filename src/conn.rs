//! What the gateway knows about a client connection, worked out once when it is accepted.
//!
//! [`ConnInfo`] carries the socket peer, whether it arrived over TLS, whether the peer is
//! a trusted proxy (so that its forwarding headers are believed), and the peer's address
//! as a ready header value. Requests on the connection copy these facts; none of them is
//! computed per request. It also holds the connection's `max_connections` slot, so the
//! slot is free only when nothing serves the connection any more (a WebSocket tunnel
//! outlives hyper's connection task). This module reads no request and no configuration
//! file.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use tokio::sync::OwnedSemaphorePermit;

use crate::limit::{self, ClientAddr};
use crate::net;

/// Facts about the connection a request came in on.
#[derive(Debug)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: SocketAddr,
    /// The peer's IP, an IPv4-mapped IPv6 address read as the IPv4 address it carries.
    pub peer_ip: IpAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Whether the peer is one of `[server] trusted_proxies`.
    pub peer_trusted: bool,
    /// `peer_ip` as a header value (X-Forwarded-For, X-Real-IP).
    pub peer_value: HeaderValue,
    /// The socket peer's IP as the access log shows it.
    pub peer_text: Box<str>,
    /// The listener's `max_connections` slot this connection takes, if it counts.
    _slot: Option<OwnedSemaphorePermit>,
}

impl ConnInfo {
    /// The facts of a connection accepted from `peer`.
    pub fn new(peer: SocketAddr, tls: bool, trusted_proxies: &[IpNet]) -> Self {
        let peer_ip = net::canonical(peer.ip());
        Self {
            peer,
            peer_ip,
            tls,
            peer_trusted: limit::peer_is_trusted(peer_ip, trusted_proxies),
            peer_value: ip_value(peer_ip),
            peer_text: peer.ip().to_string().into(),
            _slot: None,
        }
    }

    /// The same facts, holding `slot` until the last holder of this `ConnInfo` is gone.
    pub fn holding(self, slot: OwnedSemaphorePermit) -> Self {
        Self {
            _slot: Some(slot),
            ..self
        }
    }

    /// Who is calling on this request: the peer, or the client a trusted peer forwards
    /// for (see [`limit::client_ip`] for the rule).
    pub fn client(&self, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> ClientAddr {
        ClientAddr::behind(self.peer_ip, self.peer_trusted, headers, trusted_proxies)
    }

    /// `http` or `https`, for X-Forwarded-Proto.
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// An IP address as a header value.
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::try_from(ip.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}
