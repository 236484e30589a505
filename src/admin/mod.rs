//! The admin listener's endpoints: probes, metrics, the JWKS, bindings, a user's sessions,
//! the access_token server and the open-API relay.
//!
//! It binds its own (by default loopback) address, so probes, scrapes and support tools
//! never mix with client traffic, and none of these paths exist on the public listener.
//! Every path but the probes is a data endpoint guarded by [`access`], checked before the
//! path is looked at further.

mod access;
mod bindings;
mod relay;
mod sessions;
mod token;

use std::net::IpAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::error::GatewayError;
use crate::http::{Body, RequestBody, json, text};
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// Handle one admin request from `peer`.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<RequestBody>,
    peer: IpAddr,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    // Access comes first: a refused peer learns nothing about which paths exist.
    if !access::is_open(&path)
        && let Err(e) = access::check(&state.config.admin, peer, req.headers())
    {
        return e.into_response();
    }
    let result = if let Some(rest) = path.strip_prefix("/bindings/") {
        bindings::handle(&state, req.method(), req.headers(), peer, rest).await
    } else if let Some(rest) = path.strip_prefix("/sessions/") {
        sessions::handle(&state, req.method(), req.headers(), peer, rest).await
    } else if path.starts_with(relay::PREFIX) {
        relay::handle(&state, req).await
    } else if path == "/wechat/access_token" {
        token::handle(&state, req, peer).await
    } else {
        probes(&state, req.method(), &path).await
    };
    result.unwrap_or_else(GatewayError::into_response)
}

/// `{appid}/{openid}` of a per-user admin path, each segment percent-decoded.
fn user_path(rest: &str) -> Option<(String, String)> {
    let (appid, openid) = rest
        .split_once('/')
        .filter(|(a, o)| !a.is_empty() && !o.is_empty() && !o.contains('/'))?;
    Some((decode(appid), decode(openid)))
}

fn decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}

async fn probes(
    state: &AppState,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    let known = matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/.well-known/jwks.json"
    );
    if !known {
        return Err(GatewayError::NotFound);
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(GatewayError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    Ok(match path {
        "/healthz" => json(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => ready(state).await,
        "/.well-known/jwks.json" => jwks(state)?,
        _ => text(
            StatusCode::OK,
            CONTENT_TYPE,
            state.metrics.render(state.store.live_sessions().await),
        ),
    })
}

/// The public keys of `X-WX-JWT-ASSERTION`; 404 while `[identity_token]` is off.
fn jwks(state: &AppState) -> Result<Response<Body>, GatewayError> {
    let signer = state.signer.as_ref().ok_or(GatewayError::NotFound)?;
    let mut response = text(StatusCode::OK, "application/json", signer.jwks());
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}

/// Ready when the session store answers and bindings can be written.
async fn ready(state: &AppState) -> Response<Body> {
    let checked = match state.store.ping().await {
        Ok(()) => state.bindings.ready().await,
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => json(StatusCode::OK, &json!({"status": "ready"})),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not ready", "reason": e.code()}),
        ),
    }
}
