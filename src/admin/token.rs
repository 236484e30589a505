//! The central access_token endpoint (WeChat's 中控服务器) for the company's other services.
//!
//! `GET /wechat/access_token?appid=` hands out the gateway's cached token, so other services
//! stop fetching their own and knocking each other's out. A service whose call failed with
//! 40001/40014/42001 `POST`s `{"appid", "failed_token"}`; compare-then-expire means a
//! hundred such reports cause one refresh. Only peers in `[token_server] allow` (within
//! `[admin] allow`); off (404) unless `[token_server] enabled`.

use std::net::IpAddr;

use http::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::read_json;
use crate::error::GatewayError;
use crate::http::{Body, RequestBody, json};
use crate::net::in_any;
use crate::state::AppState;

#[derive(Deserialize)]
struct FailedToken {
    appid: Option<String>,
    failed_token: Option<String>,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: u64,
}

pub async fn handle(
    state: &AppState,
    req: Request<RequestBody>,
    peer: IpAddr,
) -> Result<Response<Body>, GatewayError> {
    // `[admin] allow` and the admin token were checked already; `[token_server] allow`
    // narrows further, and comes before the 404 of a disabled token server.
    let config = &state.config.token_server;
    if !in_any(peer, &config.allow) {
        return Err(GatewayError::Forbidden);
    }
    if !config.enabled {
        return Err(GatewayError::NotFound);
    }
    let appid = match *req.method() {
        Method::GET => query_appid(&req),
        Method::POST => {
            let body: FailedToken = read_json(state, req).await?;
            let appid = body
                .appid
                .filter(|a| !a.is_empty())
                .ok_or_else(|| GatewayError::invalid("`appid` is required"))?;
            if let Some(failed) = body.failed_token.filter(|t| !t.is_empty()) {
                state.tokens.expire_if_current(&appid, &failed).await;
            }
            Some(appid)
        }
        _ => return Err(GatewayError::MethodNotAllowed { allow: "GET, POST" }),
    };
    let appid = appid
        .or_else(|| (state.config.apps.len() == 1).then(|| state.config.apps[0].appid.clone()))
        .ok_or_else(|| GatewayError::invalid("`appid` is required"))?;
    let token = state.tokens.get(&appid).await?;
    Ok(json(
        StatusCode::OK,
        &TokenResponse {
            access_token: token.token.expose(),
            expires_in: token.expires_in(),
        },
    ))
}

fn query_appid(req: &Request<RequestBody>) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "appid")
        .map(|(_, v)| v.into_owned())
}
