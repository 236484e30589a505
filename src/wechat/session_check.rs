//! `checksession`: whether WeChat still holds a session's `session_key`.
//!
//! Only one key per user is valid at a time (a newer `wx.login` replaces it), so a legacy
//! service can learn that the client should log in again. The request carries the
//! HMAC-SHA256 of the empty message keyed by the key string (never the key itself);
//! 87009 means the key is stale. Any other failure is "unknown", never an error.

use hmac::{Hmac, KeyInit, Mac};
use http::Method;
use sha2::Sha256;

use super::WechatClient;
use crate::error::GatewayError;
use crate::metrics::KeyCheck;
use crate::secret::Secret;

/// WeChat's "invalid signature": the key is not the user's current one.
const INVALID_SIGNATURE: i64 = 87009;

/// `hex(HMAC-SHA256(key = session_key as given, message = ""))`.
pub fn signature(session_key: &Secret) -> String {
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(session_key.expose().as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    hex::encode(mac.finalize().into_bytes())
}

/// What a checksession answer means for the key.
pub fn key_check(result: &Result<(), GatewayError>) -> KeyCheck {
    match result {
        Ok(()) => KeyCheck::Valid,
        Err(e) if e.wechat_errcode() == Some(INVALID_SIGNATURE) => KeyCheck::Stale,
        Err(_) => KeyCheck::Unknown,
    }
}

impl WechatClient {
    /// Ask WeChat whether `session_key` is still `openid`'s key.
    pub async fn check_session(
        &self,
        access_token: &Secret,
        openid: &str,
        session_key: &Secret,
    ) -> Result<(), GatewayError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", access_token.expose())
            .append_pair("openid", openid)
            .append_pair("signature", &signature(session_key))
            .append_pair("sig_method", "hmac_sha256")
            .finish();
        let path = format!("/wxa/checksession?{query}");
        self.call("checksession", Method::GET, &path, None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_of_nothing_under_the_key_string() {
        // HMAC-SHA256(key = "key", message = "") from RFC 4231-style reference tools
        assert_eq!(
            signature(&Secret::new("key")),
            "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"
        );
        assert_eq!(
            key_check(&Err(GatewayError::Wechat {
                errcode: Some(87009),
                detail: "x".into()
            })),
            KeyCheck::Stale
        );
        assert_eq!(
            key_check(&Err(GatewayError::WechatUnavailable { errcode: None })),
            KeyCheck::Unknown
        );
    }
}
