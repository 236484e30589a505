//! `POST {auth_prefix}/phone`: a `getPhoneNumber` code in, a verified phone (and maybe an
//! account) on the session. The legacy button's `{"encryptedData", "iv"}` is accepted too
//! (decrypted with the session's key; `code` wins when a body has both) and binds the same.
//!
//! Steps: rate limit (the login bucket), authenticate, exchange the code together with the
//! session's openid (so WeChat refuses a code another user's button made) with the app's
//! access_token (retried once on a rejected token), normalise to E.164, refuse a phone
//! that maps to another account than the session's (409, nothing changes), record the
//! durable binding (openid → phone; the account is the accounts file's answer for it), then update the session so the next proxied request carries it — only
//! if it still exists: a token revoked while WeChat answered gets 401, never revived.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::decrypt::Encrypted;
use super::{authenticate, client_ip, identify, outcome, read_json, required_code};
use crate::accounts::{Binding, phone};
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::{Body, RequestBody, json};
use crate::logging::audit::{Audit, Event};
use crate::session::Session;
use crate::state::AppState;
use crate::wechat::phone::PhoneInfo;

/// The body of a phone request: a button `code`, or the legacy encrypted shape.
#[derive(Deserialize)]
pub struct PhoneRequest {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(flatten)]
    pub encrypted: Encrypted,
}

#[derive(Serialize)]
struct PhoneResponse<'a> {
    phone_number: &'a str,
    pure_phone_number: &'a str,
    country_code: &'a str,
    account_id: Option<&'a str>,
}

pub async fn phone(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let client_ip = client_ip(state, req.headers(), conn);
    let mut audit = Audit::of_request(req.headers(), client_ip);
    let result = verify(state, req, client_ip, &mut audit).await;
    state.metrics.record_phone(outcome(&result));
    if result.is_ok() {
        audit.write(Event::PhoneVerified, "ok");
    }
    result
}

async fn verify(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
    client_ip: IpAddr,
    audit: &mut Audit,
) -> Result<Response<Body>, GatewayError> {
    state.limiter.check(client_ip)?;
    let (hash, session) = authenticate(state, req.headers()).await?;
    let body: PhoneRequest = read_json(state, req).await?;
    let has_code = body.code.as_deref().is_some_and(|c| !c.trim().is_empty());
    let info = if !has_code && body.encrypted.present() {
        let opened =
            (body.encrypted.open(&session)).and_then(|data| legacy_phone(data, &session.appid));
        state.metrics.services.record_decrypt(outcome(&opened));
        opened?
    } else {
        let code = required_code(body.code.as_deref())?;
        exchange_code(state, &session, code).await?
    };
    let e164 = e164_of(&info)?;
    bind(state, &session, &e164).await?;
    let updated = Arc::new(Session {
        phone: Some(e164.as_str().into()),
        ..(*session).clone()
    });
    let account = state.accounts.resolve(updated.subject(), None).account;
    audit.appid = Some(session.appid.to_string());
    audit.openid = Some(session.openid.to_string());
    audit.account_id = account.as_deref().map(str::to_owned);
    audit.phone = Some(e164.clone());
    // only a session that still exists: a logout during the WeChat call stays a logout
    if !state.store.update(hash, updated).await? {
        return Err(GatewayError::Unauthenticated);
    }
    Ok(json(
        StatusCode::OK,
        &PhoneResponse {
            phone_number: &e164,
            pure_phone_number: &info.pure_phone_number,
            country_code: &info.country_code,
            account_id: account.as_deref(),
        },
    ))
}

/// Exchange a button code at WeChat, with the session's openid and the app's token.
async fn exchange_code(
    state: &AppState,
    session: &Session,
    code: &str,
) -> Result<PhoneInfo, GatewayError> {
    let appid = session.appid.clone();
    state
        .tokens
        .with_token(&appid, |token| {
            let (wechat, appid) = (state.wechat.clone(), appid.clone());
            let (openid, code) = (session.openid.clone(), code.to_string());
            async move { wechat.phone_number(&token, &appid, &openid, &code).await }
        })
        .await
}

/// The phone in decrypted legacy button data (its watermark already checked); data without
/// `phoneNumber`, `purePhoneNumber` and `countryCode` is `decrypt_failed`.
fn legacy_phone(data: serde_json::Value, appid: &str) -> Result<PhoneInfo, GatewayError> {
    let wrapped = serde_json::json!({ "phone_info": data });
    crate::wechat::phone::phone_info(wrapped, appid).map_err(|_| GatewayError::DecryptFailed)
}

/// The E.164 form of WeChat's phone answer: from its parts, else its full number.
pub fn e164_of(info: &PhoneInfo) -> Result<String, GatewayError> {
    phone::from_parts(&info.country_code, &info.pure_phone_number)
        .or_else(|| phone::normalize(&info.phone_number))
        .ok_or_else(|| GatewayError::Wechat {
            errcode: None,
            detail: "phone answer is not a phone number".into(),
        })
}

/// Record openid → phone; 409 (and nothing recorded) if the phone maps to another account
/// than the session already has.
async fn bind(state: &AppState, session: &Session, e164: &str) -> Result<(), GatewayError> {
    let current = identify(state, session).await?.resolved.account.clone();
    let mapped = state.accounts.account_for_phone(e164);
    if let (Some(have), Some(new)) = (&current, &mapped)
        && have != new
    {
        return Err(GatewayError::AccountConflict);
    }
    state
        .bindings
        .put(
            &session.appid,
            &session.openid,
            Binding::new(e164.to_string()),
        )
        .await
}
