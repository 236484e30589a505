//! `Authorization` classification and the token format (src/session/token.rs).
//!
//! Never panics on any bytes. A value the gateway takes as its own credential is a
//! `wxg_…` sub-slice of the value, and is always one the stripping rule recognises, so it
//! is never forwarded (contract section 5); stripping leaves no value that mentions a
//! gateway token and keeps every other. A well-formed token has the minted shape.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use wxgate::config::IdentityHeaders;
use wxgate::proxy::headers::strip_identity_headers;
use wxgate::session::token::{
    Credential, TOKEN_PREFIX, gateway_token, mentions_gateway_token, well_formed,
};

fn names() -> IdentityHeaders {
    IdentityHeaders {
        openid: HeaderName::from_static("x-wx-openid"),
        appid: HeaderName::from_static("x-wx-appid"),
        unionid: HeaderName::from_static("x-wx-unionid"),
        account_id: HeaderName::from_static("x-wx-account-id"),
        phone: HeaderName::from_static("x-wx-phone"),
    }
}

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (start, end) = (inner.as_ptr() as usize, outer.as_ptr() as usize);
    start >= end && start + inner.len() <= end + outer.len()
}

fuzz_target!(|data: &[u8]| {
    // One value split off at the first NUL from a few more (for multi-value stripping).
    let mut values = data.split(|b| *b == 0);
    let value = values.next().unwrap_or_default();

    let credential = Credential::from_header(Some(value));
    let mentioned = mentions_gateway_token(value);
    match credential {
        Credential::Gateway(token) => {
            assert!(token.starts_with(TOKEN_PREFIX.as_bytes()));
            assert!(within(token, value));
            assert_eq!(gateway_token(value), Some(token));
            // What hyper can hand over: a gateway credential must be stripped.
            if HeaderValue::from_bytes(value).is_ok() {
                assert!(mentioned, "a gateway credential is not stripped: {value:?}");
            }
        }
        Credential::Foreign => assert_eq!(gateway_token(value), None),
        Credential::None => panic!("a present header classified as absent"),
    }
    assert!(Credential::from_header(None) == Credential::None);

    if let Some(token) = well_formed(value) {
        assert_eq!(token.len(), TOKEN_PREFIX.len() + 43);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert!(
            token[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(mentioned);
    }

    // Every Authorization value is inspected: the ones that mention a gateway token go,
    // the others stay in order.
    let mut headers = HeaderMap::new();
    let mut kept = Vec::new();
    for v in std::iter::once(value).chain(values).take(4) {
        if let Ok(hv) = HeaderValue::from_bytes(v) {
            if !mentions_gateway_token(v) {
                kept.push(hv.clone());
            }
            headers.append(header::AUTHORIZATION, hv);
        }
    }
    strip_identity_headers(&mut headers, &names());
    let left: Vec<&HeaderValue> = headers.get_all(header::AUTHORIZATION).iter().collect();
    assert_eq!(left, kept.iter().collect::<Vec<_>>());
    for v in left {
        assert!(!matches!(
            Credential::from_header(Some(v.as_bytes())),
            Credential::Gateway(_)
        ));
    }
});
