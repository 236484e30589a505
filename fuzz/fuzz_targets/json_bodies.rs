//! The JSON bodies of `/wx/login` and `/wx/phone` (src/auth/), read as the endpoints read
//! them: the body's JSON, then the trimmed `code` (required, at most 512 bytes).
//!
//! Never panics; an accepted code is non-empty, trimmed and within the limit; a refused
//! body becomes the contract's 400 `invalid_request` JSON.
#![no_main]

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use wxgate::auth::login::LoginRequest;
use wxgate::auth::phone::PhoneRequest;
use wxgate::auth::required_code;
use wxgate::error::GatewayError;

fn check_code(code: Option<&str>) {
    match required_code(code) {
        Ok(c) => {
            assert!(!c.is_empty());
            assert!(c.len() <= 512);
            assert_eq!(c, c.trim());
        }
        Err(e) => {
            assert_eq!(e.code(), "invalid_request");
            assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
        }
    }
}

/// What `read_json` answers for a body serde refuses.
fn refused(e: serde_json::Error) {
    let e = GatewayError::InvalidRequest(format!("the body is not the expected JSON: {e}").into());
    assert_eq!(e.code(), "invalid_request");
    assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
}

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<LoginRequest>(data) {
        Ok(body) => {
            check_code(body.code.as_deref());
            if let Some(appid) = body.appid {
                assert!(std::str::from_utf8(appid.as_bytes()).is_ok());
            }
        }
        Err(e) => refused(e),
    }
    match serde_json::from_slice::<PhoneRequest>(data) {
        Ok(body) => check_code(body.code.as_deref()),
        Err(e) => refused(e),
    }
});
