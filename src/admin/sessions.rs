//! `GET` / `DELETE /sessions/{appid}/{openid}`: a user's live sessions, for support desks.
//!
//! The list shows when each session was made and when it ends, oldest first, and never a
//! token, its hash or anything derived from them. `DELETE` is "log this user out
//! everywhere": every live session ends as a logout ends one (at once here, within a
//! second on every replica, never revived by a request in flight), and the audit log
//! records it.

use std::net::IpAddr;

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;

use crate::error::GatewayError;
use crate::http::{Body, empty, json};
use crate::logging::audit::{Audit, Event};
use crate::state::AppState;

pub async fn handle(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    peer: IpAddr,
    rest: &str,
) -> Result<Response<Body>, GatewayError> {
    let (appid, openid) = super::user_path(rest).ok_or(GatewayError::NotFound)?;
    match *method {
        Method::GET | Method::HEAD => {
            let sessions: Vec<_> = state
                .store
                .user_sessions(&appid, &openid)
                .await?
                .into_iter()
                .map(|s| {
                    json!({
                        "created_at": humantime::format_rfc3339_seconds(s.created_at).to_string(),
                        "expires_at": humantime::format_rfc3339_seconds(s.expires_at).to_string(),
                    })
                })
                .collect();
            Ok(json(StatusCode::OK, &json!({ "sessions": sessions })))
        }
        Method::DELETE => {
            let ended = state.store.end_user_sessions(&appid, &openid, 0).await?;
            tracing::info!(appid = %appid, ended, "sessions revoked by an admin request");
            let mut audit = Audit::of_request(headers, peer);
            audit.appid = Some(appid);
            audit.openid = Some(openid);
            audit.write(Event::SessionsRevoked, "ok");
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(GatewayError::MethodNotAllowed {
            allow: "GET, HEAD, DELETE",
        }),
    }
}
