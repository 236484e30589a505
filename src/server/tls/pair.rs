//! One certificate chain and private key, read from their PEM files and checked.
//!
//! A pair loads only when the chain has a certificate, the key parses with the ring
//! provider, and the key belongs to the chain's first certificate. Errors name the file
//! (`server.tls.cert` / `server.tls.key`) and the reason; they never carry key material.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;

/// The files' bytes as read, to tell whether a later read differs.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl Source {
    /// Read both files; the error names the one that cannot be read.
    pub fn read(config: &TlsConfig) -> Result<Self, String> {
        let read = |key: &str, path: &Path| {
            std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))
        };
        Ok(Self {
            cert: read("server.tls.cert", &config.cert)?,
            key: read("server.tls.key", &config.key)?,
        })
    }
}

/// Parse and check the pair read from `config`'s files.
pub fn parse(config: &TlsConfig, source: &Source) -> Result<Arc<CertifiedKey>, String> {
    let cert_error = |problem: &dyn std::fmt::Display| {
        format!("server.tls.cert {}: {problem}", config.cert.display())
    };
    let key_error = |problem: &dyn std::fmt::Display| {
        format!("server.tls.key {}: {problem}", config.key.display())
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&source.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(&e))?;
    if certs.is_empty() {
        return Err(cert_error(&"no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&source.key).map_err(|e| key_error(&e))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(&e))?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(e) => Err(key_error(&format_args!(
            "does not belong to the certificate in {} ({e})",
            config.cert.display()
        ))),
    }
}

/// Read and parse in one step (start-up).
pub fn load(config: &TlsConfig) -> Result<(Source, Arc<CertifiedKey>), String> {
    let source = Source::read(config)?;
    let certified = parse(config, &source)?;
    Ok((source, certified))
}
