//! `GET` / `DELETE /bindings/{appid}/{openid}` for support desks.
//!
//! Shows or removes one durable binding; live sessions of that user see the change from
//! their next request.

use http::{Method, Response, StatusCode};
use serde_json::json;

use crate::error::GatewayError;
use crate::http::{Body, empty, json};
use crate::state::AppState;

pub async fn handle(
    state: &AppState,
    method: &Method,
    rest: &str,
) -> Result<Response<Body>, GatewayError> {
    let Some((appid, openid)) = rest
        .split_once('/')
        .filter(|(a, o)| !a.is_empty() && !o.is_empty() && !o.contains('/'))
    else {
        return Err(GatewayError::NotFound);
    };
    let appid = decode(appid);
    let openid = decode(openid);
    match *method {
        Method::GET | Method::HEAD => match state.bindings.get(&appid, &openid).await? {
            Some(b) => Ok(json(
                StatusCode::OK,
                &json!({
                    "appid": appid,
                    "openid": openid,
                    "phone_number": b.phone,
                    "account_id": b.account_id,
                    "bound_at": humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(b.bound_at)).to_string(),
                }),
            )),
            None => Err(GatewayError::NotFound),
        },
        Method::DELETE => match state.bindings.remove(&appid, &openid).await? {
            true => {
                tracing::info!(appid = %appid, "binding removed by an admin request");
                Ok(empty(StatusCode::NO_CONTENT))
            }
            false => Err(GatewayError::NotFound),
        },
        _ => Err(GatewayError::MethodNotAllowed {
            allow: "GET, HEAD, DELETE",
        }),
    }
}

fn decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_string())
}
