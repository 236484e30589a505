//! Matches a request to its handler and runs the request's top-level pipeline.
//!
//! Order, fixed: refuse a request with more than one `Authorization` header or a path not
//! in normal form (400; [`path`] puts the path in that form), then the auth endpoints
//! under `[server] auth_prefix`, then the first route whose prefix matches, else 404.
//! Every request ends here with one log line and one metrics count; errors become
//! responses in [`GatewayError::into_response`] and nowhere else.

pub mod path;

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, header};

use crate::auth::{self, Endpoint};
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::names::X_REQUEST_ID;
use crate::http::{Body, RequestBody};
use crate::logging::{self, AccessLine};
use crate::proxy::{self, Exchange};
use crate::state::{AppState, Route};
use crate::worker::Worker;

/// Where a request goes.
pub enum Target<'a> {
    Auth(Endpoint),
    Proxy(&'a Route),
    NotFound,
}

/// Decide the target for a (normal-form) path.
pub fn classify<'a>(state: &'a AppState, path: &str) -> Target<'a> {
    let auth = path
        .strip_prefix(state.config.server.auth_prefix.as_str())
        .and_then(Endpoint::named);
    if let Some(endpoint) = auth {
        return Target::Auth(endpoint);
    }
    state
        .routes
        .iter()
        .find(|r| path.starts_with(r.config.prefix.as_str()))
        .map_or(Target::NotFound, Target::Proxy)
}

/// Whether a path is in normal form (contract section 5; see [`path::normalize`]).
pub fn is_normal_path(path: &str) -> bool {
    path::normalize(path).is_ok()
}

/// Whether two targets are the same handler.
fn same_target(a: &Target<'_>, b: &Target<'_>) -> bool {
    match (a, b) {
        (Target::Auth(x), Target::Auth(y)) => x == y,
        (Target::Proxy(x), Target::Proxy(y)) => std::ptr::eq(*x, *y),
        (Target::NotFound, Target::NotFound) => true,
        (Target::Auth(_) | Target::Proxy(_) | Target::NotFound, _) => false,
    }
}

/// Refuse what no handler may see, and put the path in normal form: more than one
/// `Authorization` header, a path not in normal form, or `;params` that would take a
/// servlet container's reading of the path to another handler than the gateway's.
fn admit<'a>(
    state: &'a AppState,
    req: &mut Request<RequestBody>,
) -> Result<Target<'a>, GatewayError> {
    if req
        .headers()
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(GatewayError::invalid("more than one Authorization header"));
    }
    if let Some(uri) = path::normal_uri(req.uri())? {
        *req.uri_mut() = uri;
    }
    let target = classify(state, req.uri().path());
    let reread = path::without_params(req.uri().path());
    if reread.is_some_and(|plain| !same_target(&target, &classify(state, &plain))) {
        return Err(GatewayError::invalid(
            "the path's `;` parameters would change the route it reaches",
        ));
    }
    Ok(target)
}

/// The request id: the client's `X-Request-Id` when it is sane, else a fresh UUID.
fn request_id(req: &Request<RequestBody>) -> HeaderValue {
    req.headers()
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
        .unwrap_or_else(|| {
            let mut buf = uuid::Uuid::encode_buffer();
            let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
        })
}

/// Handle one request from the public listener, on the worker serving its connection.
pub async fn handle(
    worker: Arc<Worker>,
    req: Request<RequestBody>,
    conn: Arc<ConnInfo>,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let method = req.method().clone();
    let uri = req.uri().clone();
    let websocket = req.headers().contains_key(header::UPGRADE)
        && proxy::tunnel::websocket_protocol(&req).is_some();
    let (label, result) = dispatch(&worker, req, &conn, &request_id).await;
    let mut response = result.unwrap_or_else(|e| e.render(&request_id));
    let status = response.status().as_u16();
    worker.requests.record(label, status);
    if websocket {
        worker.state.metrics.record_upgrade(label, status);
    }
    logging::access(&AccessLine {
        method: &method,
        path: uri.path(),
        route: label,
        status,
        latency: started.elapsed(),
        request_id: request_id.to_str().unwrap_or("-"),
        peer: &conn.peer_text,
    });
    response
        .headers_mut()
        .entry(X_REQUEST_ID)
        .or_insert(request_id);
    response
}

async fn dispatch<'a>(
    worker: &'a Worker,
    mut req: Request<RequestBody>,
    conn: &Arc<ConnInfo>,
    request_id: &HeaderValue,
) -> (&'a Arc<str>, Result<Response<Body>, GatewayError>) {
    let state = &worker.state;
    let target = match admit(state, &mut req) {
        Ok(target) => target,
        Err(e) => return (&state.labels.none, Err(e)),
    };
    match target {
        Target::Auth(endpoint) => {
            // the audit log names the request as the response does
            req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
            let label = match endpoint {
                Endpoint::Login => &state.labels.login,
                Endpoint::Phone => &state.labels.phone,
                Endpoint::Session => &state.labels.session,
                Endpoint::Logout => &state.labels.logout,
                Endpoint::Decrypt => &state.labels.decrypt,
            };
            // Boxed: the endpoints' futures are large, and every request's future would
            // otherwise be as large as the largest of them.
            (
                label,
                Box::pin(auth::handle(state, endpoint, req, conn)).await,
            )
        }
        Target::Proxy(route) => {
            let exchange = Exchange {
                state,
                upstreams: &worker.upstreams,
                tunnels: &worker.tunnels,
                route,
                conn,
                request_id,
            };
            (&route.label, proxy::forward(&exchange, req).await)
        }
        Target::NotFound => (&state.labels.none, Err(GatewayError::NotFound)),
    }
}
