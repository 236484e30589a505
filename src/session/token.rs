//! Bearer tokens: minting, recognising and hashing.
//!
//! A token is `wxg_` + 256 bits from the OS RNG in base64url. Stores are keyed by the
//! SHA-256 of the token, never the token itself, so a dump of a store cannot be replayed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::GatewayError;

/// The prefix that marks a gateway token (and lets secret scanners find leaked ones).
pub const TOKEN_PREFIX: &str = "wxg_";
/// Length of the base64url part: 32 bytes without padding.
const TOKEN_BODY_LEN: usize = 43;

/// A freshly minted token, shown to the client exactly once.
pub struct Token(String);

impl Token {
    /// Mint a token from 32 bytes of OS randomness.
    pub fn mint() -> Result<Self, GatewayError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| GatewayError::Internal(format!("OS RNG failed: {e}").into()))?;
        let mut s = String::with_capacity(TOKEN_PREFIX.len() + TOKEN_BODY_LEN);
        s.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wxg_***")
    }
}

/// The SHA-256 of a token: the only form in which a store sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Lower-case hex, for store keys that must be text.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// What an `Authorization` header holds, as far as the gateway cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    None,
    /// `Bearer wxg_…`: the gateway's own; never forwarded.
    Gateway(&'a str),
    /// Anything else: the legacy service's own credential.
    Foreign,
}

impl<'a> Credential<'a> {
    /// Classify an `Authorization` header value.
    pub fn from_header(value: Option<&'a [u8]>) -> Self {
        let Some(value) = value else {
            return Self::None;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return Self::Foreign;
        };
        let value = value.trim();
        let Some((scheme, rest)) = value.split_once(' ') else {
            return Self::Foreign;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Self::Foreign;
        }
        let token = rest.trim_start();
        if token.starts_with(TOKEN_PREFIX) {
            Self::Gateway(token)
        } else {
            Self::Foreign
        }
    }
}

/// Whether a `wxg_` token has the exact shape the gateway mints (cheap pre-check).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + TOKEN_BODY_LEN
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_and_distinct() {
        let a = Token::mint().map(|t| t.0).unwrap_or_default();
        let b = Token::mint().map(|t| t.0).unwrap_or_default();
        assert!(is_well_formed(&a), "{a}");
        assert_ne!(a, b);
        assert_ne!(TokenHash::of(&a), TokenHash::of(&b));
    }

    #[test]
    fn classifies_authorization_headers() {
        assert_eq!(Credential::from_header(None), Credential::None);
        assert_eq!(
            Credential::from_header(Some(b"Bearer wxg_abc")),
            Credential::Gateway("wxg_abc")
        );
        assert_eq!(
            Credential::from_header(Some(b"bearer  wxg_abc")),
            Credential::Gateway("wxg_abc")
        );
        assert_eq!(
            Credential::from_header(Some(b"Bearer other")),
            Credential::Foreign
        );
        assert_eq!(
            Credential::from_header(Some(b"Basic dXNlcjpwYXNz")),
            Credential::Foreign
        );
    }
}
