//! Proxy routes: authenticate, sanitise, inject, forward, stream back.
//!
//! The phases run in a fixed order, each one small: [`authorize`] decides who the caller
//! is (or refuses), [`rewrite_request`] strips hop-by-hop and spoofable headers and injects
//! verified identity, [`send`] forwards over the pooled client within the route's timeout,
//! and the upstream's answer streams back with only hop-by-hop headers removed.

pub mod body;
pub mod headers;

use std::sync::Arc;

use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::accounts::Resolved;
use crate::auth;
use crate::config::{AuthMode, Unbound};
use crate::error::GatewayError;
use crate::http::{Body, BoxError, Client, RequestBody};
use crate::limit::ClientAddr;
use crate::router::ConnInfo;
use crate::session::{Credential, Session};
use crate::state::{AppState, Route};

use self::body::LimitedBody;
use self::headers::{Hop, Identity};

/// Who the caller is on this route.
struct Caller {
    session: Arc<Session>,
    who: Resolved,
}

/// Forward a request to the route's upstream and return its (streamed) response.
pub async fn forward(
    state: &AppState,
    route: &Route,
    req: Request<RequestBody>,
    conn: ConnInfo,
    request_id: &HeaderValue,
) -> Result<Response<Body>, GatewayError> {
    let limit = state.config.server.max_body_bytes;
    if declared_length(&req).is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge);
    }
    let credential = Credential::from_header(
        req.headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    );
    let caller = authorize(state, route.config.auth, credential).await?;
    let upstream_req = rewrite_request(state, route, req, conn, request_id, caller.as_ref())?;
    let response = send(route, upstream_req).await?;
    Ok(rewrite_response(response))
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Phase 1: who is calling. `required` needs a session; `optional` takes one if a gateway
/// token is present (an unknown one is 401); `public` never looks.
async fn authorize(
    state: &AppState,
    mode: AuthMode,
    credential: Credential<'_>,
) -> Result<Option<Caller>, GatewayError> {
    let session = match (mode, credential) {
        (AuthMode::Public, _) => return Ok(None),
        (_, Credential::Gateway(token)) => auth::lookup(state, token).await?.1,
        (AuthMode::Required, _) => return Err(GatewayError::Unauthenticated),
        (AuthMode::Optional, _) => return Ok(None),
    };
    let who = auth::identify(state, &session).await?;
    if who.account.is_none()
        && mode == AuthMode::Required
        && state.config.accounts.unbound == Unbound::Reject
    {
        return Err(GatewayError::AccountNotBound);
    }
    Ok(Some(Caller { session, who }))
}

/// Phase 2: the request as the upstream will see it: hop-by-hop headers, identity
/// look-alikes and gateway tokens removed (and an untrusted peer's forwarding claims),
/// verified identity injected, X-Forwarded-* and X-Real-IP set.
fn rewrite_request(
    state: &AppState,
    route: &Route,
    req: Request<RequestBody>,
    conn: ConnInfo,
    request_id: &HeaderValue,
    caller: Option<&Caller>,
) -> Result<Request<Body>, GatewayError> {
    let (mut parts, body) = req.into_parts();
    let client = ClientAddr::of(
        conn.peer.ip(),
        &parts.headers,
        &state.config.server.trusted_proxies,
    );
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::strip_identity_headers(&mut parts.headers, &state.identity);
    if !client.peer_trusted {
        headers::strip_forwarding_claims(&mut parts.headers);
    }
    if let Some(caller) = caller {
        let s = &caller.session;
        let identity = Identity {
            openid: &s.openid,
            appid: &s.appid,
            unionid: s.unionid.as_deref(),
            account_id: caller.who.account.as_deref(),
            phone: caller.who.phone.as_deref(),
        };
        headers::inject_identity(&mut parts.headers, &state.identity, &identity);
    }
    let hop = Hop {
        client,
        scheme: if conn.tls { "https" } else { "http" },
        host: host.as_ref(),
    };
    headers::set_forwarded(&mut parts.headers, &hop);
    parts.headers.insert("x-request-id", request_id.clone());
    if let Some(host) = host {
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = upstream_uri(route, &parts.uri)?;
    parts.version = Version::HTTP_11;
    let limited = LimitedBody::new(body, state.config.server.max_body_bytes);
    Ok(Request::from_parts(parts, limited.boxed()))
}

/// The upstream URI: its scheme and authority, its path prefix, then the request's path
/// and query. The router has already put the path in normal form (unreserved escapes
/// decoded), so the upstream sees the very path the route was matched on.
fn upstream_uri(route: &Route, incoming: &Uri) -> Result<Uri, GatewayError> {
    let upstream = &route.config.upstream;
    let pq = incoming.path_and_query().map_or("/", PathAndQuery::as_str);
    let mut parts = upstream.clone().into_parts();
    let joined = if route.upstream_path.is_empty() {
        pq.to_string()
    } else {
        format!("{}{pq}", route.upstream_path)
    };
    parts.path_and_query = Some(
        PathAndQuery::try_from(joined)
            .map_err(|_| GatewayError::invalid("the request target is not a valid path"))?,
    );
    Uri::from_parts(parts)
        .map_err(|_| GatewayError::Internal("cannot build the upstream URI".into()))
}

thread_local! {
    /// One pooled upstream client per worker thread, so a request and its upstream
    /// connection live on the same thread.
    static UPSTREAM: Client = crate::http::client(false);
}

fn upstream_client() -> Client {
    UPSTREAM.with(Client::clone)
}

/// Phase 3: send within the route's timeout and classify failures.
async fn send(route: &Route, req: Request<Body>) -> Result<Response<Incoming>, GatewayError> {
    let e = match tokio::time::timeout(route.config.timeout, upstream_client().request(req)).await {
        Err(_) => return Err(GatewayError::UpstreamTimeout),
        Ok(Ok(response)) => return Ok(response),
        Ok(Err(e)) => e,
    };
    if body::is_too_large(&e) {
        return Err(GatewayError::PayloadTooLarge);
    }
    if let Some(client_body) = crate::server::request_body::BodyError::find(&e) {
        // The client's body stalled or broke: hyper abandoned the upstream request
        // unfinished (its connection is closed, never reused), so it was never completed.
        return Err(client_body.to_gateway_error());
    }
    tracing::warn!(route = %route.label, error = %e, "upstream request failed");
    Err(GatewayError::UpstreamUnavailable)
}

/// Phase 4: the upstream's answer, hop-by-hop headers removed, body streamed.
fn rewrite_response(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.map_err(|e| -> BoxError { Box::new(e) }).boxed())
}
