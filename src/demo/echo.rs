//! The echo upstream of `wxgate demo`: answers every request with what it received.
//!
//! It shows a newcomer exactly which headers a legacy service sees behind the gateway.

use std::collections::BTreeMap;
use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::http::{Body, json};

/// Echo the request as JSON: method, path, query, headers, body.
pub async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let mut headers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str())
            .or_default()
            .push(value.to_str().unwrap_or("<binary>"));
    }
    let body = Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &json!({
            "upstream": "wxgate demo echo",
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        }),
    ))
}
