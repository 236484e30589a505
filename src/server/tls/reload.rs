//! The certificate the acceptor presents, swapped in place when its files change.
//!
//! [`Resolver`] hands every handshake the current pair from an `ArcSwap`; [`spawn`]
//! re-reads the files on the triggers of [`crate::watch`] and stores a new pair only when
//! the bytes differ from the served ones and the pair loads. A pair that fails keeps the
//! previous one and logs which file and why. It never logs key material.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::pair::{self, Source};
use crate::config::TlsConfig;
use crate::watch::{self, Cause};

/// Answers every handshake with the pair loaded last.
#[derive(Debug)]
pub struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl Resolver {
    pub fn new(first: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwap::new(first),
        }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Watch the pair's files; `served` is what `resolver` holds now.
pub fn spawn(
    config: TlsConfig,
    resolver: Arc<Resolver>,
    served: Source,
) -> Option<notify::RecommendedWatcher> {
    let files = vec![config.cert.clone(), config.key.clone()];
    let mut served = served;
    watch::spawn("TLS certificate and key", files, move |cause: Cause| {
        if let Some(source) = reload(&config, &resolver, &served, cause) {
            served = source;
        }
    })
}

/// Load the files if they differ from `served`; the new source once it is served.
fn reload(
    config: &TlsConfig,
    resolver: &Resolver,
    served: &Source,
    cause: Cause,
) -> Option<Source> {
    let loaded = Source::read(config).and_then(|source| {
        if source == *served {
            return Ok(None);
        }
        pair::parse(config, &source).map(|certified| Some((source, certified)))
    });
    match loaded {
        Ok(Some((source, certified))) => {
            resolver.current.store(certified);
            tracing::info!(
                ?cause,
                cert = %config.cert.display(),
                key = %config.key.display(),
                "TLS certificate reloaded"
            );
            Some(source)
        }
        Ok(None) => {
            tracing::info!(
                ?cause,
                "TLS certificate and key unchanged; nothing to reload"
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                ?cause,
                error = %e,
                "TLS certificate not reloaded; keeping the previous one"
            );
            None
        }
    }
}
