//! TLS termination for the public listener (rustls, ring provider).
//!
//! One acceptor for the process's life, offering HTTP/2 and HTTP/1.1 by ALPN; the
//! certificate it presents comes from a [`reload::Resolver`] that swaps in a new pair
//! when the files change or on SIGHUP, so new handshakes get the new certificate while
//! established connections keep theirs. Key material is never logged.

mod pair;
mod reload;

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The acceptor, and the watcher that keeps its certificate current (kept alive with it).
pub struct Tls {
    pub acceptor: TlsAcceptor,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Load the pair (or say which file is wrong), build the acceptor, and start watching the
/// files. Must run inside the tokio runtime.
pub fn start(config: &TlsConfig) -> Result<Tls, String> {
    let (source, certified) = pair::load(config)?;
    let resolver = Arc::new(reload::Resolver::new(certified));
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("server.tls: {e}"))?
    .with_no_client_auth()
    .with_cert_resolver(resolver.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let watcher = reload::spawn(config.clone(), resolver, source);
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        _watcher: watcher,
    })
}
