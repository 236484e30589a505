//! The open-API relay (WeChat Cloud Run's "open API service"): legacy services call
//! WeChat's server API through the gateway, which adds the app's access_token.
//!
//! `ANY /wechat/api/{path}?appid=...` goes to `{api_base}/{path}` when `{path}` is exactly
//! one of `[relay] paths`, so a caller can send QR-code and message calls but cannot change
//! the app's settings. The caller's `appid` picks the app and its own `access_token` is
//! dropped; WeChat's answer comes back unchanged. When WeChat refuses the token (40001,
//! 40014, 42001), compare-then-expire and one replay with a fresh token, with the same
//! buffered body — so a caller never sees a refusal that a refresh could cure.

use http::{Request, Response, header};

use crate::auth::read_body;
use crate::error::GatewayError;
use crate::http::{Body, RequestBody};
use crate::state::AppState;
use crate::wechat::errcode::is_token_error;
use crate::wechat::relay::RelayCall;

/// The relay's path prefix on the admin listener.
pub const PREFIX: &str = "/wechat/api/";

pub async fn handle(
    state: &AppState,
    req: Request<RequestBody>,
) -> Result<Response<Body>, GatewayError> {
    let relay = &state.config.relay;
    if !relay.enabled {
        return Err(GatewayError::NotFound);
    }
    let rest = req.uri().path().strip_prefix(PREFIX).unwrap_or_default();
    let path = relay.allowed(rest).ok_or(GatewayError::NotFound)?.clone();
    let (appid, query) = split_query(req.uri().query().unwrap_or_default());
    let appid = appid
        .or_else(|| (state.config.apps.len() == 1).then(|| state.config.apps[0].appid.clone()))
        .ok_or_else(|| GatewayError::invalid("`appid` is required"))?;
    let method = req.method().clone();
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let body = read_body(state, req).await?;
    let call = RelayCall {
        method,
        path: &path,
        query: &query,
        content_type,
        body,
    };

    let services = &state.metrics.services;
    let first = state.tokens.get(&appid).await?;
    let mut answer = state.wechat.relay(&call, &first.token).await?;
    services.record_relay(&path, answer.errcode());
    if is_token_error(answer.errcode()) {
        state
            .tokens
            .expire_if_current(&appid, first.token.expose())
            .await;
        let second = state.tokens.get(&appid).await?;
        answer = state.wechat.relay(&call, &second.token).await?;
        services.record_relay(&path, answer.errcode());
    }
    Ok(answer.into_response(state.wechat.timeout()))
}

/// The caller's `appid` (its first non-empty value) and the rest of the query as the caller
/// encoded it, without any `appid` or `access_token` pair (however its key is encoded).
fn split_query(query: &str) -> (Option<String>, String) {
    let mut appid = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = form_urlencoded::parse(pair.as_bytes())
            .next()
            .unwrap_or_default();
        match &*key {
            "appid" => {
                if appid.is_none() && !value.is_empty() {
                    appid = Some(value.into_owned());
                }
            }
            "access_token" => {}
            _ => kept.push(pair),
        }
    }
    (appid, kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::split_query;

    #[test]
    fn appid_and_any_access_token_leave_the_query() {
        let (appid, rest) =
            split_query("appid=wxA&scene=a%20b&access_token=mine&access%5Ftoken=too&&page=x");
        assert_eq!(appid.as_deref(), Some("wxA"));
        assert_eq!(rest, "scene=a%20b&page=x");
        assert_eq!(split_query(""), (None, String::new()));
        assert_eq!(split_query("appid=&x=1").0, None);
    }
}
