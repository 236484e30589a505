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
        hex::encode(self.0)
    }

    /// The hash [`TokenHash::to_hex`] wrote, or `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// What an `Authorization` header holds, as far as the gateway cares.
#[derive(PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header.
    None,
    /// A bearer credential starting `wxg_`: the gateway's own; never forwarded. Bytes, so
    /// that a value with a byte that is not text is still recognised (it matches no session).
    Gateway(&'a [u8]),
    /// Anything else: the legacy service's own credential.
    Foreign,
}

impl<'a> Credential<'a> {
    /// Classify an `Authorization` header value.
    pub fn from_header(value: Option<&'a [u8]>) -> Self {
        match value.map(gateway_token) {
            None => Self::None,
            Some(Some(token)) => Self::Gateway(token),
            Some(None) => Self::Foreign,
        }
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Gateway(_) => "Gateway(wxg_***)",
            Self::Foreign => "Foreign",
        })
    }
}

/// The token of an `Authorization` value that is a gateway bearer credential: the scheme
/// `Bearer` in any case, then whitespace (spaces or tabs, at least one), then `wxg_…`.
/// Works on bytes: a value need not be text to be the gateway's.
pub fn gateway_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.trim_ascii().split_at_checked(6)?;
    let token = rest.trim_ascii_start();
    let separated = token.len() < rest.len();
    (separated
        && scheme.eq_ignore_ascii_case(b"bearer")
        && token.starts_with(TOKEN_PREFIX.as_bytes()))
    .then_some(token)
}

/// Whether an `Authorization` value carries a gateway token in any shape, also one the
/// gateway would not accept as its credential (`Token wxg_…`, `Bearerwxg_…`, a bare
/// `wxg_…`): a short scheme of letters (and `:`), blanks, then `wxg_`; and every value
/// [`gateway_token`] accepts, however many blanks it has. Such a value is never
/// forwarded, so a misbehaving client cannot leak its token to an upstream.
pub fn mentions_gateway_token(value: &[u8]) -> bool {
    if gateway_token(value).is_some() {
        return true;
    }
    let value = value.trim_ascii_start();
    value
        .windows(TOKEN_PREFIX.len())
        .position(|w| w == TOKEN_PREFIX.as_bytes())
        .is_some_and(|at| {
            at <= 16
                && value[..at]
                    .iter()
                    .all(|b| b.is_ascii_alphabetic() || matches!(b, b' ' | b'\t' | b':'))
        })
}

/// The token as text when it has the exact shape the gateway mints (cheap pre-check).
pub fn well_formed(token: &[u8]) -> Option<&str> {
    let shaped = token.len() == TOKEN_PREFIX.len() + TOKEN_BODY_LEN
        && token.starts_with(TOKEN_PREFIX.as_bytes())
        && token[TOKEN_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    shaped.then(|| std::str::from_utf8(token).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_and_distinct() {
        let a = Token::mint().map(|t| t.0).unwrap_or_default();
        let b = Token::mint().map(|t| t.0).unwrap_or_default();
        assert_eq!(well_formed(a.as_bytes()), Some(a.as_str()));
        assert_eq!(well_formed(b"wxg_short"), None);
        assert_ne!(a, b);
        assert_ne!(TokenHash::of(&a), TokenHash::of(&b));
    }

    #[test]
    fn any_shape_of_a_gateway_token_is_recognised_for_stripping() {
        for value in [
            &b"Bearer wxg_abc"[..],
            b"Bearerwxg_abc",
            b"Token wxg_abc",
            b"wxg_abc",
            b"  wxg_abc",
            b"bearer:wxg_abc",
            b"Bearer \t wxg_\xff",
        ] {
            assert!(mentions_gateway_token(value), "{value:?}");
        }
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer legacy-token",
            b"Bearer abc.wxg_def",
            b"Digest username=\"wxg_x\"",
            b"",
        ] {
            assert!(!mentions_gateway_token(value), "{value:?}");
        }
    }

    /// Found by fuzzing: a credential the gateway accepts, with its token more than 16
    /// bytes in (many blanks after `Bearer`), was not recognised for stripping and went
    /// upstream.
    #[test]
    fn every_accepted_credential_is_recognised_for_stripping() {
        let blanks = format!("Bearer{}wxg_abc", " ".repeat(11));
        let tabs = format!("bearer \t{}wxg_abc ", "\t".repeat(20));
        for value in [blanks.as_bytes(), tabs.as_bytes()] {
            assert!(matches!(
                Credential::from_header(Some(value)),
                Credential::Gateway(b"wxg_abc")
            ));
            assert!(mentions_gateway_token(value), "{value:?}");
        }
    }

    #[test]
    fn classifies_authorization_headers() {
        assert_eq!(Credential::from_header(None), Credential::None);
        let gateway: &[&[u8]] = &[
            b"Bearer wxg_abc",
            b"bearer  wxg_abc",
            b"BEARER\twxg_abc",
            b"bEaReR \t wxg_abc ",
            b" Bearer wxg_abc",
        ];
        for value in gateway {
            assert_eq!(
                Credential::from_header(Some(value)),
                Credential::Gateway(b"wxg_abc"),
                "{value:?}"
            );
        }
        assert_eq!(
            Credential::from_header(Some(b"Bearer wxg_\xffabc")),
            Credential::Gateway(b"wxg_\xffabc")
        );
        let foreign: &[&[u8]] = &[
            b"Bearer other",
            b"Basic dXNlcjpwYXNz",
            b"Bearerwxg_abc",
            b"Bearer",
            b"Bearer ",
            b"Token wxg_abc",
            b"\xff wxg_abc",
            b"",
        ];
        for value in foreign {
            assert_eq!(
                Credential::from_header(Some(value)),
                Credential::Foreign,
                "{value:?}"
            );
        }
    }
}
