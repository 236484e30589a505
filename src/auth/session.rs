//! `GET {auth_prefix}/session` and `POST {auth_prefix}/logout`.
//!
//! Both need a live gateway token. `?verify=true` (or `1`) also asks WeChat's
//! `checksession` and adds `session_key_valid` (`null` when WeChat could not be asked; the
//! answer never fails because of it). Logout removes the session from the store at once;
//! the answer is 204 only when the store confirmed it, and the audit log records it.

use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;

use super::{authenticate, client_ip, identify};
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::{Body, empty, json};
use crate::logging::audit::{Audit, Event};
use crate::metrics::KeyCheck;
use crate::session::Session;
use crate::state::AppState;
use crate::wechat::session_check::key_check;

#[derive(Serialize)]
struct SessionResponse<'a> {
    openid: &'a str,
    unionid: Option<&'a str>,
    appid: &'a str,
    account_id: Option<&'a str>,
    phone_number: Option<&'a str>,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_key_valid: Option<Option<bool>>,
}

pub async fn show(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    let (_, session) = authenticate(state, headers).await?;
    let who = identify(state, &session).await?;
    let session_key_valid = match wants_verify(query) {
        true => Some(check_key(state, &session).await),
        false => None,
    };
    Ok(json(
        StatusCode::OK,
        &SessionResponse {
            openid: &session.openid,
            unionid: session.unionid.as_deref(),
            appid: &session.appid,
            account_id: who.resolved.account.as_deref(),
            phone_number: who.resolved.phone.as_deref(),
            expires_at: humantime::format_rfc3339_seconds(session.expires_at).to_string(),
            session_key_valid,
        },
    ))
}

/// Whether the query asks for `verify=true` or `verify=1`.
fn wants_verify(query: Option<&str>) -> bool {
    let Some(query) = query else { return false };
    form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "verify" && (v == "true" || v == "1"))
}

/// checksession's word on the session's key: `Some(valid)`, or `None` when unknown.
async fn check_key(state: &AppState, session: &Session) -> Option<bool> {
    let result = state
        .tokens
        .with_token(&session.appid, |token| async move {
            let (openid, key) = (&session.openid, &session.session_key);
            state.wechat.check_session(&token, openid, key).await
        })
        .await;
    let check = key_check(&result);
    state.metrics.services.record_checksession(check);
    match check {
        KeyCheck::Valid => Some(true),
        KeyCheck::Stale => Some(false),
        KeyCheck::Unknown => None,
    }
}

pub async fn logout(
    state: &AppState,
    headers: &HeaderMap,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let (hash, session) = authenticate(state, headers).await?;
    state.store.remove(&hash).await?;
    let mut audit = Audit::of_request(headers, client_ip(state, headers, conn));
    audit.appid = Some(session.appid.to_string());
    audit.openid = Some(session.openid.to_string());
    if let Ok(identity) = identify(state, &session).await {
        audit.account_id = identity.resolved.account.as_deref().map(str::to_owned);
        audit.phone = identity.resolved.phone.as_deref().map(str::to_owned);
    }
    audit.write(Event::Logout, "ok");
    Ok(empty(StatusCode::NO_CONTENT))
}
