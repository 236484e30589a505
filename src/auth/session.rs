//! `GET {auth_prefix}/session` and `POST {auth_prefix}/logout`.
//!
//! Both need a live gateway token. Logout removes the session from the store at once;
//! the answer is 204 only when the store confirmed it.

use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;

use super::{authenticate, identify};
use crate::error::GatewayError;
use crate::http::{Body, empty, json};
use crate::state::AppState;

#[derive(Serialize)]
struct SessionResponse<'a> {
    openid: &'a str,
    unionid: Option<&'a str>,
    appid: &'a str,
    account_id: Option<&'a str>,
    phone_number: Option<&'a str>,
    expires_at: String,
}

pub async fn show(state: &AppState, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
    let (_, session) = authenticate(state, headers).await?;
    let who = identify(state, &session).await?;
    Ok(json(
        StatusCode::OK,
        &SessionResponse {
            openid: &session.openid,
            unionid: session.unionid.as_deref(),
            appid: &session.appid,
            account_id: who.resolved.account.as_deref(),
            phone_number: who.resolved.phone.as_deref(),
            expires_at: humantime::format_rfc3339_seconds(session.expires_at).to_string(),
        },
    ))
}

pub async fn logout(state: &AppState, headers: &HeaderMap) -> Result<Response<Body>, GatewayError> {
    let (hash, _) = authenticate(state, headers).await?;
    state.store.remove(&hash).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
