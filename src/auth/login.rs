//! `POST {auth_prefix}/login`: a `wx.login()` code in, a gateway token out.
//!
//! Steps: rate limit by client IP, parse `{code, appid?}`, exchange the code at WeChat,
//! ask for the login's risk rank when `[risk]` is on, mint a token, store the session
//! under the token's hash (ending the user's oldest past `max_per_user`), answer with the
//! identity and the resolved account, and write the audit line. `session_key` stays in
//! the store.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::{client_ip, outcome, read_json, required_code};
use crate::accounts::Resolved;
use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::{Body, RequestBody, json};
use crate::logging::audit::{Audit, Event};
use crate::session::{Session, Token};
use crate::state::AppState;

/// The body of a login request.
#[derive(Deserialize)]
pub struct LoginRequest {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
}

#[derive(Serialize)]
struct LoginResponse<'a> {
    token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    openid: &'a str,
    unionid: Option<&'a str>,
    account_id: Option<&'a str>,
}

pub async fn login(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let client_ip = client_ip(state, req.headers(), conn);
    let mut audit = Audit::of_request(req.headers(), client_ip);
    let result = exchange(state, req, client_ip, &mut audit).await;
    let outcome = outcome(&result);
    state.metrics.record_login(outcome);
    let event = if result.is_ok() {
        Event::Login
    } else {
        Event::LoginFailed
    };
    audit.write(event, outcome);
    result
}

async fn exchange(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
    client_ip: IpAddr,
    audit: &mut Audit,
) -> Result<Response<Body>, GatewayError> {
    state.limiter.check(client_ip)?;
    let body: LoginRequest = read_json(state, req).await?;
    let code = required_code(body.code.as_deref())?;
    let app = state
        .config
        .app(body.appid.as_deref())
        .ok_or_else(|| match body.appid {
            Some(_) => GatewayError::invalid("unknown `appid`"),
            None => GatewayError::invalid("`appid` is required when several apps are configured"),
        })?;
    audit.appid = Some(app.appid.clone());
    let identity = state.wechat.code_to_session(app, code).await?;
    audit.openid = Some(identity.openid.clone());
    let risk_rank = super::risk::check(state, &app.appid, &identity.openid, client_ip).await?;
    let ttl = state.config.session.ttl;
    let binding = state.bindings.get(&app.appid, &identity.openid).await?;
    let session = Arc::new(Session {
        appid: Arc::from(app.appid.as_str()),
        openid: identity.openid.into(),
        unionid: identity.unionid.filter(|u| !u.is_empty()).map(Into::into),
        session_key: identity.session_key,
        phone: None,
        risk_rank,
        expires_at: SystemTime::now() + ttl,
        identity: Default::default(),
    });
    let token = Token::mint()?;
    state.store.put(token.hash(), session.clone()).await?;
    let cap = state.config.session.max_per_user;
    if cap > 0 {
        let evicted = state
            .store
            .end_user_sessions(&session.appid, &session.openid, cap)
            .await?;
        for _ in 0..evicted {
            audit.write(Event::SessionEvicted, "ok");
        }
    }
    let Resolved { account, phone } = state
        .accounts
        .resolve(session.subject(), binding.as_deref());
    tracing::debug!(appid = %session.appid, account = account.as_deref(), "login");
    audit.account_id = account.as_deref().map(str::to_owned);
    audit.phone = phone.as_deref().map(str::to_owned);
    Ok(json(
        StatusCode::OK,
        &LoginResponse {
            token: token.as_str(),
            token_type: "Bearer",
            expires_in: ttl.as_secs(),
            openid: &session.openid,
            unionid: session.unionid.as_deref(),
            account_id: account.as_deref(),
        },
    ))
}
