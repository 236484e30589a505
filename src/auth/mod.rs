//! The mini-program's endpoints: login, phone, session, logout, decrypt.
//!
//! These handlers turn WeChat results into sessions and sessions into the contract's
//! JSON. They own method checks, body limits and the login rate limit; WeChat calls live
//! in `wechat`, storage in `session`, account lookups in `accounts`.

pub mod decrypt;
pub mod login;
pub mod phone;
mod risk;
mod session;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::conn::ConnInfo;
use crate::error::GatewayError;
use crate::http::request_body::BodyError;
use crate::http::{Body, RequestBody};
use crate::session::{self as sessions, Credential, Identity, Session, TokenHash};
use crate::state::AppState;

/// The gateway's own endpoints, under `[server] auth_prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    Phone,
    Session,
    Logout,
    Decrypt,
}

impl Endpoint {
    /// The endpoint a path below the auth prefix names.
    pub fn named(rest: &str) -> Option<Self> {
        match rest {
            "/login" => Some(Self::Login),
            "/phone" => Some(Self::Phone),
            "/session" => Some(Self::Session),
            "/logout" => Some(Self::Logout),
            "/decrypt" => Some(Self::Decrypt),
            _ => None,
        }
    }
}

/// Run the endpoint after checking its method.
pub async fn handle(
    state: &Arc<AppState>,
    endpoint: Endpoint,
    req: Request<RequestBody>,
    conn: &ConnInfo,
) -> Result<Response<Body>, GatewayError> {
    let (allowed, allow) = match endpoint {
        Endpoint::Login | Endpoint::Phone | Endpoint::Logout | Endpoint::Decrypt => {
            (Method::POST, "POST")
        }
        Endpoint::Session => (Method::GET, "GET, HEAD"),
    };
    let head_ok = endpoint == Endpoint::Session && req.method() == Method::HEAD;
    if req.method() != allowed && !head_ok {
        return Err(GatewayError::MethodNotAllowed { allow });
    }
    match endpoint {
        Endpoint::Login => login::login(state, req, conn).await,
        Endpoint::Phone => phone::phone(state, req, conn).await,
        Endpoint::Session => session::show(state, req.headers(), req.uri().query()).await,
        Endpoint::Logout => session::logout(state, req.headers(), conn).await,
        Endpoint::Decrypt => decrypt::decrypt(state, req).await,
    }
}

/// The client IP of section 2: what the rate limit, the risk check and the audit log see.
pub fn client_ip(state: &AppState, headers: &HeaderMap, conn: &ConnInfo) -> IpAddr {
    conn.client(headers, &state.config.server.trusted_proxies)
        .ip
}

/// The trimmed `code` of a login or phone request: required, at most 512 bytes.
pub fn required_code(code: Option<&str>) -> Result<&str, GatewayError> {
    match code.map(str::trim) {
        None | Some("") => Err(GatewayError::invalid("`code` is required")),
        Some(c) if c.len() > 512 => Err(GatewayError::invalid("`code` is too long")),
        Some(c) => Ok(c),
    }
}

/// The metrics outcome of a login or phone call: `ok` or the error code.
pub fn outcome<T>(result: &Result<T, GatewayError>) -> &'static str {
    result.as_ref().map_or_else(GatewayError::code, |_| "ok")
}

/// The session behind the request's gateway token, or 401.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(TokenHash, Arc<Session>), GatewayError> {
    match Credential::from_header(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        Credential::Gateway(token) => sessions::lookup(&*state.store, token).await,
        Credential::None | Credential::Foreign => Err(GatewayError::Unauthenticated),
    }
}

/// The session's identity: its account and phone, from its binding and the accounts file.
pub async fn identify(state: &AppState, session: &Session) -> Result<Arc<Identity>, GatewayError> {
    state.identities().identity(session).await
}

/// Read a JSON body of at most `max_body_bytes`, whatever its `Content-Type`.
pub async fn read_json<T: DeserializeOwned>(
    state: &AppState,
    req: Request<RequestBody>,
) -> Result<T, GatewayError> {
    let bytes = read_body(state, req).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::InvalidRequest(format!("the body is not the expected JSON: {e}").into())
    })
}

/// Read a whole body of at most `max_body_bytes` (413 beyond; 408 or 400 when it stalls or
/// breaks off).
pub async fn read_body(state: &AppState, req: Request<RequestBody>) -> Result<Bytes, GatewayError> {
    let limit = state.config.server.max_body_bytes;
    let declared = crate::http::declared_length(req.headers());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::PayloadTooLarge),
        Err(e) => Err(BodyError::find(e.as_ref()).map_or(
            GatewayError::invalid("the request body could not be read"),
            GatewayError::from,
        )),
    }
}
