//! Header rewriting between client and upstream.
//!
//! Hop-by-hop headers go (RFC 9110 §7.6.1, plus those a `Connection` header names); every
//! client header that could pose as identity goes — names equal to an identity header or
//! starting with `X-WX-`, compared case-insensitively with every byte that is not an ASCII
//! letter or digit read as `-` (PHP/CGI upstreams fold `X_WX_OPENID` and `X.WX.OPENID`
//! into one variable) — and so does every `Authorization` value that is a gateway bearer
//! token, before the verified values are injected. The client's forwarding claims
//! (`X-Forwarded-*`, `Forwarded`, `X-Real-IP` and kin) are believed only from a trusted
//! proxy, and `X-Real-IP` always carries the client IP the rate limit uses.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::http::names::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REAL_IP};
use crate::limit::ClientAddr;
use crate::session::token;

/// RFC 9110 §7.6.1 connection-specific fields, plus the legacy proxy ones.
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Forwarding claims believed only from a trusted proxy (compared folded, like identity
/// names). The `X-Forwarded-For/Proto/Host` the gateway sets itself are among them, so
/// their look-alikes go too.
const FORWARDING_CLAIMS: [&str; 11] = [
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// The prefix reserved for the gateway's own headers.
const IDENTITY_PREFIX: &[u8] = b"x-wx-";

/// The identity header names, as configured.
pub use crate::config::IdentityHeaders as IdentityNames;

impl IdentityNames {
    fn all(&self) -> [&HeaderName; 6] {
        [
            &self.openid,
            &self.appid,
            &self.unionid,
            &self.account_id,
            &self.phone,
            &self.risk_rank,
        ]
    }

    /// Whether a client header could pose as identity.
    pub fn is_spoofable(&self, name: &HeaderName) -> bool {
        let n = name.as_str().as_bytes();
        n.get(..IDENTITY_PREFIX.len())
            .is_some_and(|p| folded_eq(p, IDENTITY_PREFIX))
            || self
                .all()
                .iter()
                .any(|id| folded_eq(n, id.as_str().as_bytes()))
    }
}

/// Whether a client header is a forwarding claim (or looks like one).
fn is_forwarding_claim(name: &HeaderName) -> bool {
    let n = name.as_str().as_bytes();
    FORWARDING_CLAIMS
        .iter()
        .any(|claim| folded_eq(n, claim.as_bytes()))
}

/// Header-name equality as PHP/CGI-style upstreams see it: ASCII case ignored, and every
/// byte that is not an ASCII letter or digit read as `-`.
fn folded_eq(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            b'-'
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// Remove hop-by-hop headers, including those a `Connection` header lists.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_connection_listed(headers);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Remove the headers a `Connection` header names (no allocation when there is none).
fn strip_connection_listed(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in &listed {
        headers.remove(name);
    }
}

/// Everything the upstream must not see of the client's headers, in one pass over them:
/// hop-by-hop headers, identity look-alikes, gateway tokens, and (from an untrusted peer)
/// forwarding claims. The same as [`strip_hop_by_hop`], [`strip_identity_headers`] and
/// [`strip_forwarding_claims`] in turn.
pub fn sanitize(headers: &mut HeaderMap, names: &IdentityNames, peer_trusted: bool) {
    strip_connection_listed(headers);
    remove_matching(headers, |n| {
        HOP_BY_HOP.contains(n) || names.is_spoofable(n) || (!peer_trusted && is_forwarding_claim(n))
    });
    strip_gateway_tokens(headers);
}

/// Remove every header that could pose as identity, and every `Authorization` value that
/// is the gateway's own bearer token (other `Authorization` values stay).
pub fn strip_identity_headers(headers: &mut HeaderMap, names: &IdentityNames) {
    remove_matching(headers, |n| names.is_spoofable(n));
    strip_gateway_tokens(headers);
}

/// From a peer that is not a trusted proxy: remove its forwarding claims, look-alikes too.
pub fn strip_forwarding_claims(headers: &mut HeaderMap) {
    remove_matching(headers, is_forwarding_claim);
}

/// Remove every header whose name `doomed` picks (no allocation when none is picked).
fn remove_matching(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in names {
        headers.remove(&name);
    }
}

fn is_gateway_bearer(value: &&HeaderValue) -> bool {
    token::mentions_gateway_token(value.as_bytes())
}

/// Remove the `Authorization` values that carry a gateway token, keeping the others.
fn strip_gateway_tokens(headers: &mut HeaderMap) {
    let values = headers.get_all(header::AUTHORIZATION);
    if !values.iter().any(|v| is_gateway_bearer(&v)) {
        return;
    }
    let keep: Vec<HeaderValue> = values
        .iter()
        .filter(|v| !is_gateway_bearer(v))
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for value in keep {
        headers.append(header::AUTHORIZATION, value);
    }
}

/// What the gateway knows about the hop it received the request on.
pub struct Hop<'a> {
    /// The socket peer, whether it is trusted, and the client IP behind it.
    pub client: ClientAddr,
    /// The peer's IP as a header value (made when it connected).
    pub peer_value: &'a HeaderValue,
    pub scheme: &'static str,
    /// The incoming Host (or HTTP/2 `:authority`).
    pub host: Option<&'a HeaderValue>,
}

/// Set X-Forwarded-For/Proto/Host (replaced for an untrusted peer, extended for a trusted
/// one) and X-Real-IP (the client IP, always).
pub fn set_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let ClientAddr {
        peer,
        peer_trusted,
        ip,
    } = hop.client;
    let xff = if peer_trusted {
        appended_forwarded_for(headers, hop.peer_value)
    } else {
        Some(hop.peer_value.clone())
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let real_ip = if ip == peer {
        hop.peer_value.clone()
    } else {
        crate::conn::ip_value(ip)
    };
    headers.insert(X_REAL_IP, real_ip);
    if !(peer_trusted && headers.contains_key(X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.scheme));
    }
    if !(peer_trusted && headers.contains_key(X_FORWARDED_HOST)) {
        match hop.host {
            Some(host) => headers.insert(X_FORWARDED_HOST, host.clone()),
            None => headers.remove(X_FORWARDED_HOST),
        };
    }
}

/// A trusted proxy's X-Forwarded-For values, joined in order, with its own IP appended.
fn appended_forwarded_for(headers: &HeaderMap, peer: &HeaderValue) -> Option<HeaderValue> {
    let mut joined = Vec::new();
    for value in &headers.get_all(X_FORWARDED_FOR) {
        joined.extend_from_slice(value.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(peer.as_bytes());
    HeaderValue::from_bytes(&joined).ok()
}

#[cfg(test)]
mod tests;
