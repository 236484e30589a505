//! What an `https://` route's upstream must present: a certificate chaining to the
//! system roots (webpki-roots), or to the route's `ca_file` only.
//!
//! The CA file is read and checked when the configuration loads (so `check-config`
//! reports a missing, unparsable or empty one), and each route's rustls client config
//! (ring provider, ALPN `http/1.1`) is built here once. Nothing here opens a connection.

use std::path::Path;
use std::sync::Arc;

use http::Uri;
use hyper_rustls::ConfigBuilderExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use super::ConfigError;

/// The client config of an `https://` route; `ca_file` on an `http://` one is an error.
pub fn for_route(
    key: &str,
    upstream: &Uri,
    ca_file: Option<&Path>,
) -> Result<Option<Arc<ClientConfig>>, ConfigError> {
    if upstream.scheme_str() != Some("https") {
        return match ca_file {
            Some(_) => Err(ConfigError::key(
                &format!("{key}.ca_file"),
                "is only for an https:// upstream",
            )),
            None => Ok(None),
        };
    }
    let host = upstream.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if ServerName::try_from(host).is_err() {
        return Err(ConfigError::key(
            &format!("{key}.upstream"),
            format!("{host:?} is not a name a TLS certificate can be checked against"),
        ));
    }
    client_config(key, ca_file).map(Some)
}

/// The client config for an `https://` route; `ca_file` (already resolved) replaces the
/// system roots. `key` is the route's key, e.g. `routes[2]`.
fn client_config(key: &str, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::key(key, format!("cannot set up TLS: {e}")))?;
    let builder = match ca_file {
        Some(path) => builder.with_root_certificates(roots(&format!("{key}.ca_file"), path)?),
        None => builder.with_webpki_roots(),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file at `path` as a trust anchor; at least one.
fn roots(key: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let problem = |what: String| ConfigError::key(key, format!("{}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| problem(format!("cannot read it: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| problem(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(problem("no certificate in it".into()));
    }
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        store
            .add(cert)
            .map_err(|e| problem(format!("certificate {} is not usable as a CA: {e}", i + 1)))?;
    }
    Ok(store)
}
