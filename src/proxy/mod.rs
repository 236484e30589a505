//! Proxy routes: authenticate, sanitise, inject, forward, stream back.
//!
//! [`forward`] runs named phases in a fixed order over one [`Exchange`] (the request's
//! context, in the manner of pingora's `ProxyHttp`): [`Exchange::admit`] refuses a body
//! declared too large, [`Exchange::authorize`] decides who the caller is (or refuses),
//! [`Exchange::rewrite_request`] strips hop-by-hop and spoofable headers and injects the
//! caller's ready identity, [`Exchange::send`] forwards over this worker's pool within the
//! route's timeout, and [`rewrite_response`] removes the upstream's hop-by-hop headers
//! from the answer, which streams back. A WebSocket upgrade goes through the same phases
//! (its `Upgrade` pair put back after stripping) on a connection of its own, and a 101
//! from the upstream opens a [`tunnel`]. Logging and metrics are the router's.

pub mod body;
pub mod connect;
pub mod headers;
pub mod tunnel;
pub mod upstream;

use std::sync::Arc;

use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::upgrade::OnUpgrade;

use crate::config::{AuthMode, Unbound};
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::names::X_REQUEST_ID;
use crate::http::{Body, RequestBody};
use crate::session::{self, Credential, Identity};
use crate::state::{AppState, Route};

use self::body::{LimitedBody, UpstreamBody};
use self::headers::Hop;
use self::tunnel::{Tunnel, Tunnels};
use self::upstream::{UpstreamError, Upstreams};

/// One proxied request's context: what every phase reads.
pub struct Exchange<'a> {
    pub state: &'a AppState,
    /// This worker's upstream pools.
    pub upstreams: &'a Upstreams,
    /// This worker's open WebSocket tunnels.
    pub tunnels: &'a Arc<Tunnels>,
    pub route: &'a Route,
    pub conn: &'a Arc<ConnInfo>,
    pub request_id: &'a HeaderValue,
}

/// Forward a request to the route's upstream and return its (streamed) response.
pub async fn forward(
    ex: &Exchange<'_>,
    mut req: Request<RequestBody>,
) -> Result<Response<Body>, GatewayError> {
    ex.admit(&req)?;
    let caller = ex.authorize(&req).await?;
    let websocket = tunnel::websocket_protocol(&req);
    let client_upgrade = websocket.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let mut upstream_req = ex.rewrite_request(req, caller.as_deref())?;
    match (websocket, client_upgrade) {
        (Some(protocol), Some(client)) => {
            tunnel::restore_upgrade_headers(upstream_req.headers_mut(), protocol);
            ex.upgrade(upstream_req, client).await
        }
        _ => {
            let sent = ex.upstreams.send(ex.route.index, upstream_req);
            let response = ex.within_timeout(sent).await?;
            Ok(rewrite_response(response))
        }
    }
}

impl Exchange<'_> {
    /// Phase 1: a body declared larger than `max_body_bytes` is refused before anything
    /// else (a streamed one is cut off at the limit by [`LimitedBody`]).
    fn admit(&self, req: &Request<RequestBody>) -> Result<(), GatewayError> {
        let limit = self.state.config.server.max_body_bytes;
        match crate::http::declared_length(req.headers()) {
            Some(n) if n > limit => Err(GatewayError::PayloadTooLarge),
            Some(_) | None => Ok(()),
        }
    }

    /// Phase 2: who is calling. `required` needs a session; `optional` takes one if a
    /// gateway token is present (an unknown one is 401); `public` never looks.
    async fn authorize(
        &self,
        req: &Request<RequestBody>,
    ) -> Result<Option<Arc<Identity>>, GatewayError> {
        let mode = self.route.config.auth;
        if mode == AuthMode::Public {
            return Ok(None);
        }
        let credential = Credential::from_header(
            req.headers()
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        );
        let session = match (mode, credential) {
            (_, Credential::Gateway(token)) => session::lookup(&*self.state.store, token).await?.1,
            (AuthMode::Required, Credential::None | Credential::Foreign) => {
                return Err(GatewayError::Unauthenticated);
            }
            (AuthMode::Optional | AuthMode::Public, Credential::None | Credential::Foreign) => {
                return Ok(None);
            }
        };
        let identity = self.state.identities().identity(&session).await?;
        if !identity.has_account()
            && mode == AuthMode::Required
            && self.state.config.accounts.unbound == Unbound::Reject
        {
            return Err(GatewayError::AccountNotBound);
        }
        Ok(Some(identity))
    }

    /// Phase 3: the request as the upstream will see it: hop-by-hop headers, identity
    /// look-alikes and gateway tokens removed (and an untrusted peer's forwarding claims),
    /// the caller's identity injected, X-Forwarded-* and X-Real-IP set.
    fn rewrite_request(
        &self,
        req: Request<RequestBody>,
        caller: Option<&Identity>,
    ) -> Result<Request<UpstreamBody>, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let server = &self.state.config.server;
        let conn = self.conn;
        let client = conn.client(&parts.headers, &server.trusted_proxies);
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let names = &self.state.config.identity_headers;
        headers::sanitize(&mut parts.headers, names, conn.peer_trusted);
        if let Some(identity) = caller {
            identity.inject(&mut parts.headers);
            if let Some(signer) = &self.state.signer
                && let Some(assertion) =
                    identity.assertion(signer, self.route.index, &self.route.config.audience)
            {
                parts.headers.insert(crate::assertion::HEADER, assertion);
            }
        }
        let hop = Hop {
            client,
            peer_value: &conn.peer_value,
            scheme: conn.scheme(),
            host: host.as_ref(),
        };
        headers::set_forwarded(&mut parts.headers, &hop);
        parts.headers.insert(X_REQUEST_ID, self.request_id.clone());
        let host = host.or_else(|| self.route.upstream_host.clone());
        if let Some(host) = host {
            parts.headers.insert(header::HOST, host);
        }
        let origin_form = self.upstreams.origin_form(self.route.index);
        parts.uri = upstream_uri(self.route, parts.uri, origin_form)?;
        parts.version = Version::HTTP_11;
        let limited = LimitedBody::new(body, server.max_body_bytes);
        Ok(Request::from_parts(parts, limited))
    }

    /// Phase 4: wait for the upstream's answer within the route's timeout, and classify
    /// failures.
    async fn within_timeout(
        &self,
        sent: impl Future<Output = Result<Response<Body>, UpstreamError>>,
    ) -> Result<Response<Body>, GatewayError> {
        let route = self.route;
        let e = match tokio::time::timeout(route.config.timeout, sent).await {
            Err(_) => return Err(GatewayError::UpstreamTimeout),
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(e)) => e,
        };
        if body::is_too_large(&e) {
            return Err(GatewayError::PayloadTooLarge);
        }
        if let Some(client_body) = crate::http::request_body::BodyError::find(&e) {
            // The client's body stalled or broke: hyper abandoned the upstream request
            // unfinished (its connection is closed, never reused), so it was never completed.
            return Err(client_body.into());
        }
        tracing::warn!(route = %route.label, error = %e, "upstream request failed");
        Err(GatewayError::UpstreamUnavailable)
    }

    /// Phases 4 and 5 of a WebSocket upgrade: send it on a connection of its own; a 101
    /// opens a tunnel (spliced once hyper has written the 101 to the client), any other
    /// answer goes back as it is.
    async fn upgrade(
        &self,
        req: Request<UpstreamBody>,
        client: OnUpgrade,
    ) -> Result<Response<Body>, GatewayError> {
        let sent = self.upstreams.send_upgrade(self.route.index, req);
        let mut response = self.within_timeout(sent).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(rewrite_response(response));
        }
        let protocol = response.headers().get(header::UPGRADE).cloned();
        let upstream = hyper::upgrade::on(&mut response);
        let mut response = rewrite_response(response);
        let Some(protocol) = protocol else {
            tracing::warn!(route = %self.route.label, "upstream answered 101 without Upgrade");
            return Err(GatewayError::UpstreamUnavailable);
        };
        tunnel::restore_upgrade_headers(response.headers_mut(), protocol);
        let tunnel = Tunnel::new(
            client,
            upstream,
            self.state.config.server.idle_timeout,
            self.route.label.clone(),
            self.conn.clone(),
            self.tunnels,
        );
        tokio::spawn(tunnel.splice());
        Ok(response)
    }
}

/// The upstream request target: the route's upstream path prefix, then the request's path
/// and query; in origin form for a plain-HTTP pool, else absolute. The router has already
/// put the path in normal form (unreserved escapes decoded), so the upstream sees the very
/// path the route was matched on.
fn upstream_uri(route: &Route, incoming: Uri, origin_form: bool) -> Result<Uri, GatewayError> {
    let unchanged = route.upstream_path.is_empty() && incoming.scheme().is_none();
    if origin_form && unchanged {
        return Ok(incoming);
    }
    let pq = incoming.path_and_query().map_or("/", PathAndQuery::as_str);
    let path_and_query = if route.upstream_path.is_empty() {
        incoming
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
    } else {
        PathAndQuery::try_from(format!("{}{pq}", route.upstream_path))
            .map_err(|_| GatewayError::invalid("the request target is not a valid path"))?
    };
    if origin_form {
        return Ok(Uri::from(path_and_query));
    }
    let mut parts = route.config.upstream.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts)
        .map_err(|_| GatewayError::Internal("cannot build the upstream URI".into()))
}

/// Phase 5: the upstream's answer, hop-by-hop headers removed, body streamed.
fn rewrite_response(mut response: Response<Body>) -> Response<Body> {
    headers::strip_hop_by_hop(response.headers_mut());
    response
}
