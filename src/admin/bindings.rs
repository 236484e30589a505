//! `GET` / `DELETE /bindings/{appid}/{openid}` for support desks.
//!
//! Shows or removes one durable binding: the verified phone it records and the account the
//! current accounts file gives that phone. Live sessions of that user see a removal from
//! their next request; a removal is written to the audit log.

use std::time::{Duration, UNIX_EPOCH};

use std::net::IpAddr;

use http::{HeaderMap, Method, Response, StatusCode};
use serde_json::json;

use crate::accounts::Binding;
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
        Method::GET | Method::HEAD => match state.bindings.get(&appid, &openid).await? {
            Some(b) => Ok(show(state, &appid, &openid, &b)),
            None => Err(GatewayError::NotFound),
        },
        Method::DELETE => match state.bindings.remove(&appid, &openid).await? {
            true => {
                tracing::info!(appid = %appid, "binding removed by an admin request");
                let mut audit = Audit::of_request(headers, peer);
                audit.appid = Some(appid);
                audit.openid = Some(openid);
                audit.write(Event::BindingDeleted, "ok");
                Ok(empty(StatusCode::NO_CONTENT))
            }
            false => Err(GatewayError::NotFound),
        },
        _ => Err(GatewayError::MethodNotAllowed {
            allow: "GET, HEAD, DELETE",
        }),
    }
}

fn show(state: &AppState, appid: &str, openid: &str, b: &Binding) -> Response<Body> {
    let account = b
        .phone
        .as_deref()
        .and_then(|p| state.accounts.account_for_phone(p));
    let bound_at = UNIX_EPOCH + Duration::from_secs(b.bound_at);
    json(
        StatusCode::OK,
        &json!({
            "appid": appid,
            "openid": openid,
            "phone_number": b.phone,
            "account_id": account.as_deref(),
            "bound_at": humantime::format_rfc3339_seconds(bound_at).to_string(),
        }),
    )
}
