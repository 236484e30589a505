//! Encryption at rest for what a shared store keeps.
//!
//! Values are sealed with AES-256-GCM under a key derived from `[redis] encryption_key`,
//! with the Redis key name as associated data (a blob moved to another key does not open).
//! Key names that would reveal users (openids) are keyed HMACs, so a dump can neither read
//! phones and WeChat credentials nor list users.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::GatewayError;

const NONCE_LEN: usize = 12;

/// Seals and opens values; names keys.
pub struct Sealer {
    cipher: Aes256Gcm,
    names: [u8; 32],
}

/// HMAC-SHA256 accepts keys of any length, so construction cannot fail.
fn mac(key: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
}

fn derive(master: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac = mac(master);
    mac.update(label);
    mac.finalize().into_bytes().into()
}

fn store_error(what: &'static str) -> GatewayError {
    GatewayError::Internal(what.into())
}

impl Sealer {
    /// Build from the 32-byte master key.
    pub fn new(master: &[u8]) -> Result<Self, String> {
        if master.len() != 32 {
            return Err("redis.encryption_key must decode to 32 bytes".into());
        }
        let seal_key = derive(master, b"wxgate seal v1");
        let cipher = Aes256Gcm::new_from_slice(&seal_key).map_err(|e| e.to_string())?;
        Ok(Self {
            cipher,
            names: derive(master, b"wxgate names v1"),
        })
    }

    /// `nonce || ciphertext+tag`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, GatewayError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| store_error("OS RNG failed"))?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| store_error("encryption failed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Open a sealed value; `None` if it was not sealed under this key for this `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
            .ok()
    }

    /// A keyed, stable name for `parts` (hex HMAC), for keys that must not reveal users.
    pub fn name(&self, parts: &[&str]) -> String {
        let mut mac = mac(&self.names);
        for part in parts {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        hex::encode(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_binds_to_the_key_name() {
        let s = Sealer::new(&[7u8; 32]).map_err(|e| e.to_string());
        let Ok(s) = s else { panic!("sealer") };
        let sealed = s.seal(b"k1", b"session_key=abc").unwrap_or_default();
        assert!(!sealed.windows(3).any(|w| w == b"abc"));
        assert_eq!(
            s.open(b"k1", &sealed).as_deref(),
            Some(&b"session_key=abc"[..])
        );
        assert_eq!(s.open(b"k2", &sealed), None);
        assert_eq!(s.name(&["wx1", "o1"]), s.name(&["wx1", "o1"]));
        assert_ne!(s.name(&["wx1", "o1"]), s.name(&["wx1o", "1"]));
        let other = Sealer::new(&[8u8; 32]).map_err(|e| e.to_string());
        let Ok(other) = other else { panic!("sealer") };
        assert_eq!(other.open(b"k1", &sealed), None);
    }
}
