//! `getuserriskrank`: WeChat's opinion of how risky a login looks (0 lowest, 4 highest).
//!
//! Asked right after `jscode2session` with the user's openid and the client's IP, so a
//! login WeChat rates as fraud can be refused before any session exists.

use std::net::IpAddr;

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::WechatClient;
use crate::error::GatewayError;
use crate::secret::Secret;

/// What is asked of `getuserriskrank` for one login.
pub struct RiskQuery<'a> {
    pub appid: &'a str,
    pub openid: &'a str,
    /// 0 = registration or login, 1 = marketing fraud.
    pub scene: u32,
    pub client_ip: IpAddr,
}

impl WechatClient {
    /// The user's `risk_rank`; an answer without one is a WeChat error.
    pub async fn risk_rank(
        &self,
        access_token: &Secret,
        query: &RiskQuery<'_>,
    ) -> Result<i64, GatewayError> {
        let path = format!(
            "/wxa/getuserriskrank?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", access_token.expose())
                .finish()
        );
        let body = json!({
            "appid": query.appid,
            "openid": query.openid,
            "scene": query.scene,
            "client_ip": query.client_ip.to_canonical().to_string(),
        });
        let answer = self
            .call(
                "getuserriskrank",
                Method::POST,
                &path,
                Some(Bytes::from(body.to_string())),
            )
            .await?;
        answer
            .get("risk_rank")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| GatewayError::Wechat {
                errcode: None,
                detail: "getuserriskrank answer without risk_rank".into(),
            })
    }
}
