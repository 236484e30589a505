//! Who may use the admin listener's data endpoints.
//!
//! `/healthz`, `/readyz`, `/metrics` and `/.well-known/jwks.json` are open to every peer
//! (probes come from the node; public keys are public). Every other path is a data
//! endpoint: the socket peer (IPv4-mapped addresses read as IPv4, `X-Forwarded-For` never
//! believed) must be in `[admin] allow`, and when `[admin] token` is set the request must
//! carry exactly one `Authorization: Bearer <token>`, compared in constant time. This
//! module decides and never logs; the token is never echoed.

use std::net::IpAddr;

use http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminConfig;
use crate::error::GatewayError;
use crate::net::in_any;

/// The paths any peer of the admin listener may use.
const OPEN: &[&str] = &["/healthz", "/readyz", "/metrics", "/.well-known/jwks.json"];

/// Whether `path` is open to every peer (anything else is a data endpoint).
pub fn is_open(path: &str) -> bool {
    OPEN.contains(&path)
}

/// Allow a data-endpoint request from `peer`, or refuse it with 403 `forbidden`.
pub fn check(config: &AdminConfig, peer: IpAddr, headers: &HeaderMap) -> Result<(), GatewayError> {
    if !in_any(peer, &config.allow) {
        return Err(GatewayError::Forbidden);
    }
    match &config.token {
        None => Ok(()),
        Some(token) if presents(headers, token.expose().as_bytes()) => Ok(()),
        Some(_) => Err(GatewayError::Forbidden),
    }
}

/// Whether the request carries exactly one `Authorization: Bearer <expected>`.
fn presents(headers: &HeaderMap, expected: &[u8]) -> bool {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Some(presented) = bearer(value.as_bytes()) else {
        return false;
    };
    // Digests of equal length, compared in constant time: neither the token's bytes nor
    // its length show in the timing.
    let (a, b) = (Sha256::digest(presented), Sha256::digest(expected));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

/// The credential of a `Bearer` value (scheme case-insensitive, any blanks after it).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..6)?;
    let rest = &value[6..];
    if !scheme.eq_ignore_ascii_case(b"bearer")
        || !rest.first().is_some_and(|b| *b == b' ' || *b == b'\t')
    {
        return None;
    }
    let credential = rest.trim_ascii();
    (!credential.is_empty()).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn config(allow: &[&str], token: Option<&str>) -> AdminConfig {
        AdminConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            allow: allow.iter().map(|a| a.parse().unwrap()).collect(),
            token: token.map(Secret::new),
            max_connections: 1,
        }
    }

    fn auth(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_peer_is_checked_in_canonical_form() {
        let c = config(&["127.0.0.1/32"], None);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(check(&c, mapped, &HeaderMap::new()).is_ok());
        let other: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(
            check(&c, other, &HeaderMap::new()),
            Err(GatewayError::Forbidden)
        );
    }

    #[test]
    fn the_token_must_be_the_one_bearer_credential() {
        let c = config(&["0.0.0.0/0"], Some("0123456789abcdef"));
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        for ok in ["Bearer 0123456789abcdef", "bearer \t0123456789abcdef"] {
            assert!(check(&c, peer, &auth(&[ok])).is_ok(), "{ok}");
        }
        for bad in [
            &[][..],
            &["Bearer 0123456789abcdeF"],
            &["Bearer0123456789abcdef"],
            &["Basic 0123456789abcdef"],
            &["Bearer "],
            &["Bearer 0123456789abcdef", "Bearer 0123456789abcdef"],
        ] {
            assert!(check(&c, peer, &auth(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_probes_and_the_jwks_are_open() {
        for open in OPEN {
            assert!(is_open(open));
        }
        for data in [
            "/healthz/",
            "/bindings/a/b",
            "/wechat/access_token",
            "/",
            "//metrics",
        ] {
            assert!(!is_open(data), "{data}");
        }
    }
}
