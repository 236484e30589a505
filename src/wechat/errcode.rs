//! WeChat's `errcode` field and what each code means for the gateway.
//!
//! WeChat answers errors with HTTP 200 and `{"errcode": N, "errmsg": "..."}`; `errcode` has
//! been seen as a number and as a numeric string, and `errmsg` carries changing suffixes, so
//! the gateway matches on the number only.

use serde_json::Value;

use crate::error::GatewayError;

/// The errcode of a WeChat answer: `None` when absent, 0 when it says success.
pub fn errcode(body: &Value) -> Result<Option<i64>, GatewayError> {
    match body.get("errcode") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(malformed),
        Some(Value::String(s)) => s.trim().parse::<i64>().map(Some).map_err(|_| malformed()),
        Some(_) => Err(malformed()),
    }
}

fn malformed() -> GatewayError {
    GatewayError::Wechat {
        errcode: None,
        detail: "malformed errcode".into(),
    }
}

/// Map a non-zero errcode to the contract's error.
pub fn to_error(errcode: i64) -> GatewayError {
    match errcode {
        40029 => GatewayError::InvalidCode { errcode },
        40163 => GatewayError::CodeUsed { errcode },
        40226 => GatewayError::UserBlocked { errcode },
        45011 => GatewayError::WechatRateLimited { errcode },
        -1 => GatewayError::WechatUnavailable {
            errcode: Some(errcode),
        },
        other => GatewayError::Wechat {
            errcode: Some(other),
            detail: describe(other).into(),
        },
    }
}

/// A short description for codes an operator should recognise.
fn describe(errcode: i64) -> &'static str {
    match errcode {
        40001 | 40014 | 42001 => "access_token invalid or expired",
        40013 => "invalid appid",
        40125 => "invalid app secret (check [[apps]] secret)",
        40164 => "the gateway's IP is not in the app's whitelist",
        45009 => "daily quota reached",
        40066 => "invalid url (check [wechat] api_base)",
        _ => "unexpected errcode",
    }
}

/// Whether an errcode says the access_token used was invalid, expired or not the latest.
pub fn is_token_error(errcode: i64) -> bool {
    matches!(errcode, 40001 | 40014 | 42001)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errcode_as_number_or_string() {
        assert_eq!(errcode(&json!({"errcode": 40029})).ok(), Some(Some(40029)));
        assert_eq!(
            errcode(&json!({"errcode": "40163"})).ok(),
            Some(Some(40163))
        );
        assert_eq!(errcode(&json!({"openid": "o"})).ok(), Some(None));
        assert!(errcode(&json!({"errcode": "x"})).is_err());
    }

    #[test]
    fn maps_to_contract_codes() {
        assert_eq!(to_error(40029).code(), "invalid_code");
        assert_eq!(to_error(40163).code(), "code_used");
        assert_eq!(to_error(40226).code(), "user_blocked");
        assert_eq!(to_error(45011).code(), "rate_limited");
        assert_eq!(to_error(-1).code(), "wechat_unavailable");
        assert_eq!(to_error(40125).code(), "wechat_error");
        assert_eq!(to_error(40125).wechat_errcode(), Some(40125));
    }
}
