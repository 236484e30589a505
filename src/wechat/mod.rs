//! The only code that talks to WeChat.
//!
//! [`WechatClient`] makes typed calls over one pooled HTTPS client, bounded by
//! `[wechat] timeout`; answers are parsed from the body whatever their `Content-Type`, and
//! errcodes become contract errors here. Secrets travel only in the outgoing request and
//! are never logged; answers are checked before anything is returned.

pub mod crypt;
pub mod errcode;
pub mod phone;
pub mod relay;
pub mod risk;
pub mod session_check;
pub mod token;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{AppConfig, WechatConfig};
use crate::error::GatewayError;
use crate::http::{Client, client, full};
use crate::metrics::Metrics;
use crate::secret::Secret;

/// WeChat answers are small; anything larger is not WeChat.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What `jscode2session` tells about a user.
#[derive(Debug, Clone, Deserialize)]
pub struct CodeSession {
    pub openid: String,
    #[serde(default)]
    pub unionid: Option<String>,
    pub session_key: Secret,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// The user's identity from a `jscode2session` answer whose errcode was already checked.
pub fn code_session(body: Value) -> Result<CodeSession, GatewayError> {
    let session: CodeSession = serde_json::from_value(body).map_err(|_| GatewayError::Wechat {
        errcode: None,
        detail: "jscode2session answer without openid or session_key".into(),
    })?;
    if session.openid.is_empty() {
        return Err(GatewayError::Wechat {
            errcode: None,
            detail: "empty openid".into(),
        });
    }
    Ok(session)
}

/// A client for WeChat's server API.
pub struct WechatClient {
    http: Client,
    config: WechatConfig,
    metrics: Arc<Metrics>,
}

impl WechatClient {
    pub fn new(config: WechatConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            http: client(false),
            config,
            metrics,
        }
    }

    /// The bound on one WeChat call.
    pub fn timeout(&self) -> std::time::Duration {
        self.config.timeout
    }

    /// The metrics this client records into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Exchange a `wx.login()` code for the user's identity (`/sns/jscode2session`).
    /// A code is single-use, so this is never retried.
    pub async fn code_to_session(
        &self,
        app: &AppConfig,
        code: &str,
    ) -> Result<CodeSession, GatewayError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("appid", &app.appid)
            .append_pair("secret", app.secret.expose())
            .append_pair("js_code", code)
            .append_pair("grant_type", "authorization_code")
            .finish();
        let body = self
            .call(
                "jscode2session",
                Method::GET,
                &format!("/sns/jscode2session?{query}"),
                None,
            )
            .await?;
        code_session(body)
    }

    /// One call: send, time, parse the JSON body and turn a non-zero errcode into an error.
    pub async fn call(
        &self,
        api: &'static str,
        method: Method,
        path_and_query: &str,
        json_body: Option<Bytes>,
    ) -> Result<Value, GatewayError> {
        let started = Instant::now();
        let result = tokio::time::timeout(
            self.config.timeout,
            self.send(method, path_and_query, json_body),
        )
        .await
        .unwrap_or(Err(GatewayError::WechatUnavailable { errcode: None }))
        .and_then(|body| match errcode::errcode(&body)? {
            None | Some(0) => Ok(body),
            Some(code) => Err(errcode::to_error(code)),
        });
        let outcome = result.as_ref().err().map(GatewayError::code);
        self.metrics.record_wechat(api, started.elapsed(), outcome);
        if let Err(e) = &result {
            tracing::warn!(
                api,
                code = e.code(),
                wechat_errcode = e.wechat_errcode(),
                "WeChat call failed"
            );
        }
        result
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        json_body: Option<Bytes>,
    ) -> Result<Value, GatewayError> {
        let uri = format!("{}{}", self.config.api_base, path_and_query);
        let mut builder = Request::builder().method(method).uri(uri);
        if json_body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(full(json_body.unwrap_or_default()))
            .map_err(|_| GatewayError::Internal("cannot build a WeChat request".into()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|_| GatewayError::WechatUnavailable { errcode: None })?;
        if !response.status().is_success() {
            return Err(GatewayError::WechatUnavailable { errcode: None });
        }
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|_| GatewayError::WechatUnavailable { errcode: None })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|_| GatewayError::Wechat {
            errcode: None,
            detail: "answer is not JSON".into(),
        })
    }
}
