//! WeChat's answers as the gateway reads them (src/wechat/): the body's JSON, its
//! `errcode`, then the answer of `jscode2session`, `stable_token` or
//! `getuserphonenumber` (and the phone's E.164 form, src/auth/phone.rs).
//!
//! Never panics. A non-zero errcode maps to one of the contract's codes; an accepted
//! jscode2session answer has an openid, and its `Debug` hides the session_key; an accepted
//! stable_token answer has a token, expiring in the future or now, hidden by `Debug`; a
//! phone answer is accepted only for the app its watermark names, and its E.164 form is
//! `+` and 8–15 digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wxgate::auth::phone::e164_of;
use wxgate::secret::Secret;
use wxgate::wechat::errcode::{errcode, to_error};
use wxgate::wechat::phone::phone_info;
use wxgate::wechat::token::source::access_token;
use wxgate::wechat::{CodeSession, code_session};

const CODES: [&str; 5] = [
    "invalid_code",
    "code_used",
    "user_blocked",
    "rate_limited",
    "wechat_unavailable",
];

fuzz_target!(|data: &[u8]| {
    let Some((api, body)) = data.split_first() else {
        return;
    };
    // As `WechatClient::send` and `call` do: JSON, then the errcode.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    match errcode(&value) {
        Err(e) => {
            assert_eq!(e.code(), "wechat_error");
            return;
        }
        Ok(Some(code)) if code != 0 => {
            let e = to_error(code);
            assert!(
                CODES.contains(&e.code()) || e.code() == "wechat_error",
                "{e:?}"
            );
            assert!(e.wechat_errcode() == Some(code) || e.code() == "wechat_unavailable");
            let _ = e.into_response();
            return;
        }
        Ok(_) => {}
    }
    match api % 3 {
        0 => {
            if let Ok(session) = code_session(value.clone()) {
                assert!(!session.openid.is_empty());
                let key = session.session_key.expose();
                let shown = format!("{session:?}");
                // Shown only if it is not in what the rest of the Debug shows anyway.
                let without = CodeSession {
                    session_key: Secret::new(""),
                    ..session.clone()
                };
                let distinct = key.len() >= 4 && !format!("{without:?}").contains(key);
                assert!(!distinct || !shown.contains(key), "{shown}");
            }
        }
        1 => {
            if let Ok(token) = access_token(value.clone()) {
                assert!(!token.token.expose().is_empty());
                let _ = token.is_valid();
                let _ = token.expires_in();
            }
        }
        _ => {
            for appid in ["wx1", "wx0123456789abcdef"] {
                let Ok(info) = phone_info(value.clone(), appid) else {
                    continue;
                };
                assert_eq!(
                    value
                        .pointer("/phone_info/watermark/appid")
                        .and_then(Value::as_str),
                    Some(appid)
                );
                if let Ok(e164) = e164_of(&info) {
                    let digits = e164.strip_prefix('+').unwrap_or_else(|| panic!("{e164:?}"));
                    assert!((8..=15).contains(&digits.len()), "{e164:?}");
                    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{e164:?}");
                } else {
                    assert_eq!(e164_of(&info).map_err(|e| e.code()), Err("wechat_error"));
                }
            }
        }
    }
});
