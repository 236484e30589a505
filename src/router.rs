//! Matches a request to its handler and runs the request's top-level pipeline.
//!
//! Order, fixed: refuse more than one `Authorization` header and paths not in normal form
//! (400), then the auth endpoints under `[server] auth_prefix`, then the first route
//! whose prefix matches, else 404. Every request ends here with one log line and one
//! metrics count; errors become responses in [`GatewayError::into_response`] and nowhere
//! else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, header};

use crate::auth;
use crate::error::GatewayError;
use crate::http::{Body, RequestBody};
use crate::proxy;
use crate::state::{AppState, Route};

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The gateway's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthEndpoint {
    Login,
    Phone,
    Session,
    Logout,
}

/// Where a request goes.
pub enum Target<'a> {
    Auth(AuthEndpoint),
    Proxy(&'a Route),
    NotFound,
}

/// Decide the target for a (normal-form) path.
pub fn classify<'a>(state: &'a AppState, path: &str) -> Target<'a> {
    if let Some(rest) = path.strip_prefix(state.config.server.auth_prefix.as_str()) {
        let endpoint = match rest {
            "/login" => Some(AuthEndpoint::Login),
            "/phone" => Some(AuthEndpoint::Phone),
            "/session" => Some(AuthEndpoint::Session),
            "/logout" => Some(AuthEndpoint::Logout),
            _ => None,
        };
        if let Some(e) = endpoint {
            return Target::Auth(e);
        }
    }
    state
        .routes
        .iter()
        .find(|r| path.starts_with(r.config.prefix.as_str()))
        .map_or(Target::NotFound, Target::Proxy)
}

/// Whether a path is in normal form: no `.`/`..` segment, no `//`, no backslash, and no
/// percent-encoded `/`, `\` or `.`.
pub fn is_normal_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains("//") || path.contains('\\') {
        return false;
    }
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let hex = bytes.get(i + 1..i + 3).map(|h| h.to_ascii_lowercase());
            if matches!(hex.as_deref(), Some(b"2f") | Some(b"5c") | Some(b"2e")) {
                return false;
            }
        }
    }
    !path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// The request id: the client's `X-Request-Id` when it is sane, else a fresh UUID.
fn request_id(req: &Request<RequestBody>) -> HeaderValue {
    req.headers()
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            let mut buf = uuid::Uuid::encode_buffer();
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
        })
}

/// A duration shown as milliseconds with microsecond precision (`1.975`).
struct Millis(std::time::Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// Handle one request from the public listener.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<RequestBody>,
    conn: ConnInfo,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (label, result) = dispatch(&state, req, conn, &request_id).await;
    let mut response = result.unwrap_or_else(|e| {
        if let GatewayError::Internal(detail) = &e {
            tracing::error!(request_id = ?request_id, detail = %detail, "internal error");
        }
        e.into_response()
    });
    response
        .headers_mut()
        .entry("x-request-id")
        .or_insert(request_id.clone());
    let status = response.status().as_u16();
    state.metrics.record_request(&label, status);
    tracing::info!(
        target: "wxgate::access",
        method = %method,
        path = %path,
        route = %label,
        status,
        latency_ms = %Millis(started.elapsed()),
        request_id = request_id.to_str().unwrap_or("-"),
        peer = %conn.peer.ip(),
    );
    response
}

async fn dispatch(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
    conn: ConnInfo,
    request_id: &HeaderValue,
) -> (Arc<str>, Result<Response<Body>, GatewayError>) {
    let authorizations = req.headers().get_all(header::AUTHORIZATION);
    if authorizations.iter().nth(1).is_some() {
        let e = GatewayError::invalid("more than one Authorization header");
        return (state.labels.none.clone(), Err(e));
    }
    if !is_normal_path(req.uri().path()) {
        let e = GatewayError::invalid(
            "the path is not in normal form (., .., //, \\ or an encoded /, \\ or .)",
        );
        return (state.labels.none.clone(), Err(e));
    }
    match classify(state, req.uri().path()) {
        Target::Auth(endpoint) => {
            let label = match endpoint {
                AuthEndpoint::Login => state.labels.login.clone(),
                AuthEndpoint::Phone => state.labels.phone.clone(),
                AuthEndpoint::Session => state.labels.session.clone(),
                AuthEndpoint::Logout => state.labels.logout.clone(),
            };
            (label, auth::handle(state, endpoint, req, conn).await)
        }
        Target::Proxy(route) => (
            route.label.clone(),
            proxy::forward(state, route, req, conn, request_id).await,
        ),
        Target::NotFound => (state.labels.none.clone(), Err(GatewayError::NotFound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form() {
        for ok in ["/", "/api/x", "/api/x.y", "/a/..b/c", "/a%20b", "/api/%41"] {
            assert!(is_normal_path(ok), "{ok}");
        }
        for bad in [
            "/api/../x",
            "/api/./x",
            "//api",
            "/api//x",
            "/api\\x",
            "/api/%2e%2e/x",
            "/api%2Fx",
            "/api%5cx",
            "/api/..",
            "/.",
            "api",
        ] {
            assert!(!is_normal_path(bad), "{bad}");
        }
    }
}
