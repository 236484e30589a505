//! Header rewriting between client and upstream.
//!
//! Hop-by-hop headers go (RFC 9110 §7.6.1, plus those a `Connection` header names); every
//! client header that could pose as identity goes — names equal to an identity header or
//! starting with `X-WX-`, compared case-insensitively with `_` read as `-` — before the
//! verified values are injected. The client's own forwarding claims are believed only
//! from a trusted proxy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::IdentityHeaders;

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

/// The identity header names, ready for comparison.
pub struct IdentityNames {
    pub openid: HeaderName,
    pub appid: HeaderName,
    pub unionid: HeaderName,
    pub account_id: HeaderName,
    pub phone: HeaderName,
}

impl IdentityNames {
    pub fn new(config: &IdentityHeaders) -> Self {
        Self {
            openid: config.openid.clone(),
            appid: config.appid.clone(),
            unionid: config.unionid.clone(),
            account_id: config.account_id.clone(),
            phone: config.phone.clone(),
        }
    }

    fn all(&self) -> [&HeaderName; 5] {
        [
            &self.openid,
            &self.appid,
            &self.unionid,
            &self.account_id,
            &self.phone,
        ]
    }

    /// Whether a client header could pose as identity.
    pub fn is_spoofable(&self, name: &HeaderName) -> bool {
        let n = name.as_str().as_bytes();
        let wx_prefix = n.len() >= 5 && dash_eq(&n[..5], b"x-wx-");
        wx_prefix
            || self
                .all()
                .iter()
                .any(|id| dash_eq(n, id.as_str().as_bytes()))
    }
}

/// ASCII case-insensitive equality with `_` and `-` taken as the same byte.
fn dash_eq(a: &[u8], b: &[u8]) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(*x) == norm(*y))
}

/// Remove hop-by-hop headers, including those a `Connection` header lists.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Remove every header that could pose as identity, and the gateway's own bearer token.
pub fn strip_identity_headers(
    headers: &mut HeaderMap,
    names: &IdentityNames,
    drop_authorization: bool,
) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| names.is_spoofable(n))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(&name);
    }
    if drop_authorization {
        headers.remove(header::AUTHORIZATION);
    }
}

/// The verified identity to inject.
pub struct Identity<'a> {
    pub openid: &'a str,
    pub appid: &'a str,
    pub unionid: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub phone: Option<&'a str>,
}

/// Set the identity headers. Values that are not valid header text are left out.
pub fn inject_identity(headers: &mut HeaderMap, names: &IdentityNames, id: &Identity<'_>) {
    let mut set = |name: &HeaderName, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name.clone(), v);
        }
    };
    set(&names.openid, Some(id.openid));
    set(&names.appid, Some(id.appid));
    set(&names.unionid, id.unionid);
    set(&names.account_id, id.account_id);
    set(&names.phone, id.phone);
}

/// What the gateway knows about the hop it received the request on.
pub struct Hop<'a> {
    pub peer_ip: std::net::IpAddr,
    pub trusted: bool,
    pub scheme: &'static str,
    /// The incoming Host (or HTTP/2 `:authority`).
    pub host: Option<&'a HeaderValue>,
}

/// Set X-Forwarded-For/Proto/Host: replaced for an untrusted peer, extended for a trusted one.
pub fn set_forwarded(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let peer = hop.peer_ip.to_string();
    let xff = if hop.trusted {
        let prior: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if prior.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prior.join(", "))
        }
    } else {
        headers.remove(header::FORWARDED);
        peer
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    let keep = |headers: &HeaderMap, name: &str| hop.trusted && headers.contains_key(name);
    if !keep(headers, "x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(hop.scheme));
    }
    if !keep(headers, "x-forwarded-host") {
        match hop.host {
            Some(host) => headers.insert("x-forwarded-host", host.clone()),
            None => headers.remove("x-forwarded-host"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn names() -> IdentityNames {
        let c = Config::from_toml(
            "[[apps]]\nappid='a'\nsecret='s'\n[identity_headers]\naccount_id='X-User-Id'\n",
            std::path::Path::new("."),
        );
        match c {
            Ok(c) => IdentityNames::new(&c.identity_headers),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn strips_every_spoofing_variant() {
        let n = names();
        let mut h = HeaderMap::new();
        for name in [
            "x-wx-openid",
            "X_WX_OPENID",
            "x-wx_anything",
            "x_user_id",
            "X-User-Id",
        ] {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap_or(header::ACCEPT),
                HeaderValue::from_static("forged"),
            );
        }
        h.insert("x-wxfoo", HeaderValue::from_static("keep"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wxg_x"),
        );
        strip_identity_headers(&mut h, &n, true);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-wxfoo"));
    }

    #[test]
    fn strips_connection_listed_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, X-Foo"));
        h.insert("x-foo", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-bar", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-bar"));
    }

    #[test]
    fn forwarded_headers_from_untrusted_and_trusted_peers() {
        let host = HeaderValue::from_static("app.example.com");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let hop = Hop {
            peer_ip: "1.2.3.4"
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            trusted: false,
            scheme: "http",
            host: Some(&host),
        };
        set_forwarded(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "app.example.com");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        set_forwarded(
            &mut h,
            &Hop {
                trusted: true,
                ..hop
            },
        );
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 1.2.3.4");
        assert_eq!(h["x-forwarded-proto"], "https");
    }
}
