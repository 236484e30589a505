//! `getuserphonenumber`: a `getPhoneNumber` button code in, a verified phone out.
//!
//! The body names the session's `openid` with the code, so WeChat checks that the code was
//! made for that user and refuses one taken from another user's button. The answer's
//! `watermark.appid` must be the app the session belongs to; `countryCode` arrives as a
//! string or a number. The call is billed per success, so callers never repeat
//! it needlessly (only the access_token retry runs it twice).

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WechatClient;
use crate::error::GatewayError;
use crate::secret::Secret;

/// A verified phone number as WeChat gives it.
#[derive(Debug, Clone)]
pub struct PhoneInfo {
    pub phone_number: String,
    pub pure_phone_number: String,
    pub country_code: String,
}

#[derive(Serialize)]
struct PhoneRequest<'a> {
    code: &'a str,
    openid: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    phone_info: RawPhone,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPhone {
    phone_number: String,
    pure_phone_number: String,
    country_code: Value,
    watermark: Watermark,
}

#[derive(Deserialize)]
struct Watermark {
    appid: String,
}

fn bad_answer(detail: &'static str) -> GatewayError {
    GatewayError::Wechat {
        errcode: None,
        detail: detail.into(),
    }
}

impl WechatClient {
    /// Exchange `openid`'s phone code with the given access_token; checks the watermark's
    /// appid.
    pub async fn phone_number(
        &self,
        access_token: &Secret,
        appid: &str,
        openid: &str,
        code: &str,
    ) -> Result<PhoneInfo, GatewayError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.expose())
            .finish();
        let body = serde_json::to_vec(&PhoneRequest { code, openid })
            .map_err(|_| GatewayError::Internal("cannot encode a phone request".into()))?;
        let body = Bytes::from(body);
        let path = format!("/wxa/business/getuserphonenumber?{query}");
        let value = self
            .call("getuserphonenumber", Method::POST, &path, Some(body))
            .await?;
        phone_info(value, appid)
    }
}

/// The phone in a `getuserphonenumber` answer whose errcode was already checked, if its
/// watermark names `appid`.
pub fn phone_info(value: Value, appid: &str) -> Result<PhoneInfo, GatewayError> {
    let answer: Answer =
        serde_json::from_value(value).map_err(|_| bad_answer("phone answer without phone_info"))?;
    let raw = answer.phone_info;
    if raw.watermark.appid != appid {
        return Err(bad_answer("phone answer's watermark.appid is not this app"));
    }
    let country_code = match raw.country_code {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(bad_answer(
                "phone answer's countryCode is neither string nor number",
            ));
        }
    };
    Ok(PhoneInfo {
        phone_number: raw.phone_number,
        pure_phone_number: raw.pure_phone_number,
        country_code,
    })
}
