//! The admin listener: `/healthz`, `/readyz`, `/metrics`.
//!
//! It binds its own (by default loopback) address, so probes and scrapes never mix with
//! client traffic and none of these paths exist on the public listener.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::error::GatewayError;
use crate::http::{Body, json, text};
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// Handle one admin request.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let result = match req.uri().path() {
        "/healthz" | "/readyz" | "/metrics" if !get => Err(GatewayError::MethodNotAllowed { allow: "GET, HEAD" }),
        "/healthz" => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
        "/readyz" => Ok(ready(&state).await),
        "/metrics" => Ok(text(StatusCode::OK, CONTENT_TYPE, state.metrics.render(state.store.len()))),
        _ => Err(GatewayError::NotFound),
    };
    result.unwrap_or_else(GatewayError::into_response)
}

async fn ready(state: &AppState) -> Response<Body> {
    match state.store.ping().await {
        Ok(()) => json(StatusCode::OK, &json!({"status": "ready"})),
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not ready", "reason": e.code()}),
        ),
    }
}
