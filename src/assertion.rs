//! The signed identity assertion (`X-WX-JWT-ASSERTION`, CONTRACT section 11): an ES256 JWT
//! an upstream verifies against the admin listener's JWKS, so that it can tell a request
//! that came through the gateway from one that did not.
//!
//! [`Signer`] holds the key (ring's ECDSA P-256, fixed-size signatures as JWS wants them),
//! the `kid` (the RFC 7638 thumbprint, the same on every replica and restart) and the JWKS
//! document, all made once at start-up. [`Claims`] are what a session's identity says,
//! serialised once when the identity is resolved; a signature is made per session and
//! route only when the cached one has used up half its lifetime (see `session::identity`),
//! so a request normally copies a header value.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::config::IdentityTokenConfig;

/// The header the assertion travels in.
pub const HEADER: HeaderName = HeaderName::from_static("x-wx-jwt-assertion");

/// What a session's identity asserts, whatever the route (`aud`, `iat`, `exp` are added
/// when signing). Absent values are left out, never null.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    pub sub: &'a str,
    pub openid: &'a str,
    pub appid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unionid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_rank: Option<u8>,
}

impl Claims<'_> {
    /// The claims as the inside of a JSON object (`"sub":...,"openid":...`), to be signed
    /// many times with other `aud`, `iat` and `exp`.
    pub fn fragment(&self) -> Box<str> {
        let object = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        let inner = object
            .strip_prefix('{')
            .and_then(|o| o.strip_suffix('}'))
            .unwrap_or("");
        inner.into()
    }
}

/// A signed assertion and when to sign a new one.
#[derive(Debug)]
pub struct Signed {
    pub value: HeaderValue,
    /// Unix seconds after which the assertion is signed again (half its lifetime).
    pub renew_at: u64,
}

/// The key that signs assertions, its `kid` and the JWKS that publishes it.
pub struct Signer {
    key: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
    /// base64url of the JOSE header, the same for every assertion.
    header: String,
    issuer: String,
    ttl: u64,
    jwks: Bytes,
}

impl Signer {
    pub fn new(config: &IdentityTokenConfig) -> Self {
        let point = config.signing.public_key().as_ref();
        let current = jwk(point);
        let kid = current["kid"].as_str().unwrap_or_default().to_string();
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        // the signing key first; each key once, however often it is listed
        let mut keys = vec![current];
        for previous in config.previous.iter().map(|p| jwk(p)) {
            if !keys.iter().any(|k| k["kid"] == previous["kid"]) {
                keys.push(previous);
            }
        }
        Self {
            key: config.signing.clone(),
            rng: SystemRandom::new(),
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            issuer: serde_json::to_string(&*config.issuer).unwrap_or_else(|_| "\"\"".into()),
            ttl: config.ttl.as_secs().max(1),
            jwks: Bytes::from(json!({ "keys": keys }).to_string()),
        }
    }

    /// The JWKS document (`{"keys": [...]}`): the signing key first, then the previous ones.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// Sign `claims` (a [`Claims::fragment`]) for `audience`, issued `now`.
    pub fn sign(&self, claims: &str, audience: &str, now: SystemTime) -> Option<Signed> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let exp = iat + self.ttl;
        let aud = serde_json::to_string(audience).ok()?;
        let separator = if claims.is_empty() { "" } else { "," };
        let payload = format!(
            r#"{{"iss":{},"aud":{aud}{separator}{claims},"iat":{iat},"exp":{exp}}}"#,
            self.issuer
        );
        let signing_input = format!("{}.{}", self.header, URL_SAFE_NO_PAD.encode(payload));
        let signature = self.key.sign(&self.rng, signing_input.as_bytes()).ok()?;
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        Some(Signed {
            value: HeaderValue::from_str(&token).ok()?,
            renew_at: iat + self.ttl / 2,
        })
    }
}

/// The public JWK of an uncompressed P-256 point, with its RFC 7638 thumbprint as `kid`.
fn jwk(point: &[u8]) -> serde_json::Value {
    let (x, y) = match point {
        [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
        _ => (&[][..], &[][..]),
    };
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    // RFC 7638: the required members in lexicographic order, no whitespace
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_leave_out_what_is_unknown() {
        let c = Claims {
            sub: "wx1:o1",
            openid: "o1",
            appid: "wx1",
            unionid: None,
            account_id: None,
            phone_number: None,
            risk_rank: Some(0),
        };
        assert_eq!(
            &*c.fragment(),
            r#""sub":"wx1:o1","openid":"o1","appid":"wx1","risk_rank":0"#
        );
    }
}
