//! `[identity_token]`: the signed identity assertion (CONTRACT section 11), as serde reads
//! it and as validated values.
//!
//! The signing key is a PKCS#8 PEM P-256 private key (`signing_key` or `signing_key_file`);
//! `previous_keys_files` are PKCS#8 private or SPKI public PEMs that are published, never
//! used. Every key is parsed here, so a key that is not P-256 fails at start-up with its
//! config key named; no message shows key material.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::Deserialize;

use super::ConfigError;
use super::expand::inline_or_file;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentityToken {
    pub enabled: bool,
    pub issuer: String,
    pub ttl: String,
    pub signing_key: Option<String>,
    pub signing_key_file: Option<String>,
    pub previous_keys_files: Vec<String>,
}

impl Default for RawIdentityToken {
    fn default() -> Self {
        Self {
            enabled: false,
            issuer: "wxgate".into(),
            ttl: "60s".into(),
            signing_key: None,
            signing_key_file: None,
            previous_keys_files: Vec::new(),
        }
    }
}

/// The signed identity, when `[identity_token] enabled = true`.
#[derive(Clone)]
pub struct IdentityTokenConfig {
    pub issuer: Arc<str>,
    pub ttl: Duration,
    /// The key that signs.
    pub signing: Arc<EcdsaKeyPair>,
    /// Uncompressed public points (`04 || x || y`) of the keys published beside it.
    pub previous: Vec<[u8; 65]>,
}

impl std::fmt::Debug for IdentityTokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityTokenConfig")
            .field("issuer", &self.issuer)
            .field("ttl", &self.ttl)
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// The DER prefix of every P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, an
/// uncompressed point of 65 bytes follows).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// `None` when off; a config error names the key that is missing or not P-256.
pub fn identity_token(
    raw: RawIdentityToken,
    base: &Path,
) -> Result<Option<IdentityTokenConfig>, ConfigError> {
    let ttl = super::parse_duration("identity_token.ttl", &raw.ttl)?;
    let pem = inline_or_file(
        "identity_token.signing_key",
        raw.signing_key,
        raw.signing_key_file,
        base,
    )?;
    if !raw.enabled {
        return Ok(None);
    }
    if ttl.is_zero() {
        return Err(ConfigError::key(
            "identity_token.ttl",
            "must be more than 0s",
        ));
    }
    if raw.issuer.is_empty() {
        return Err(ConfigError::key(
            "identity_token.issuer",
            "must not be empty",
        ));
    }
    let pem = pem.filter(|p| !p.is_empty()).ok_or_else(|| {
        ConfigError::key(
            "identity_token.signing_key",
            "required when enabled (or signing_key_file): a PKCS#8 PEM P-256 private key",
        )
    })?;
    let signing = private_key(pem.as_bytes()).ok_or_else(|| {
        ConfigError::key(
            "identity_token.signing_key",
            "is not a PKCS#8 PEM P-256 private key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`)",
        )
    })?;
    let previous = raw
        .previous_keys_files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let key = format!("identity_token.previous_keys_files[{i}]");
            let full = base.join(file);
            let pem = std::fs::read(&full).map_err(|e| {
                ConfigError::key(&key, format!("cannot read {}: {e}", full.display()))
            })?;
            public_point(&pem).ok_or_else(|| {
                ConfigError::key(
                    &key,
                    format!(
                        "{} is not a P-256 key (PKCS#8 private or SPKI public PEM)",
                        full.display()
                    ),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(IdentityTokenConfig {
        issuer: Arc::from(raw.issuer),
        ttl,
        signing: Arc::new(signing),
        previous,
    }))
}

fn private_key(pem: &[u8]) -> Option<EcdsaKeyPair> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem).ok()?;
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .ok()
}

/// The public point of a private PKCS#8 or a public SPKI P-256 PEM.
fn public_point(pem: &[u8]) -> Option<[u8; 65]> {
    if let Some(pair) = private_key(pem) {
        return pair.public_key().as_ref().try_into().ok();
    }
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).ok()?;
    let point = spki.as_ref().strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.first() == Some(&0x04))
        .then(|| point.try_into().ok())
        .flatten()
}
