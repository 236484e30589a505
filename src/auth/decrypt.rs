//! `POST {auth_prefix}/decrypt`: encrypted data from the mini-program in, its JSON out.
//!
//! The session's `session_key` opens `{"encryptedData", "iv"}` (see `wechat::crypt`), so
//! legacy services get share tickets, WeRun steps and user info without ever holding the
//! key. A body without both fields is `invalid_request`; anything that fails to decrypt or
//! belongs to another app or user is `decrypt_failed`. Outcomes are counted.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{authenticate, outcome, read_json};
use crate::error::GatewayError;
use crate::http::{Body, RequestBody};
use crate::session::Session;
use crate::state::AppState;
use crate::wechat::crypt::{self, Owner};

/// The legacy encrypted shape (`wx.getUserInfo`, `wx.getWeRunData`, the phone button).
#[derive(Deserialize)]
pub struct Encrypted {
    #[serde(default, rename = "encryptedData")]
    pub encrypted_data: Option<String>,
    #[serde(default)]
    pub iv: Option<String>,
}

impl Encrypted {
    /// Whether the body carries this shape at all.
    pub fn present(&self) -> bool {
        self.encrypted_data.is_some() || self.iv.is_some()
    }

    /// Decrypt with the session's key; the data must name the session's app (and user).
    pub fn open(&self, session: &Session) -> Result<serde_json::Value, GatewayError> {
        let (Some(data), Some(iv)) = (non_empty(&self.encrypted_data), non_empty(&self.iv)) else {
            return Err(GatewayError::invalid(
                "`encryptedData` and `iv` are required",
            ));
        };
        let owner = Owner {
            appid: &session.appid,
            openid: &session.openid,
        };
        crypt::decrypt(&session.session_key, data, iv, &owner)
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub async fn decrypt(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
) -> Result<Response<Body>, GatewayError> {
    let result = open(state, req).await;
    state.metrics.services.record_decrypt(outcome(&result));
    result
}

async fn open(
    state: &Arc<AppState>,
    req: Request<RequestBody>,
) -> Result<Response<Body>, GatewayError> {
    let (_, session) = authenticate(state, req.headers()).await?;
    let body: Encrypted = read_json(state, req).await?;
    let data = body.open(&session)?;
    Ok(crate::http::json(StatusCode::OK, &json!({ "data": data })))
}
