//! Every variant's status, code, `wechat_errcode` and extra header, and where an internal
//! error is logged.

use super::*;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};

async fn body_json(response: Response<Body>) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
    let value = serde_json::from_slice(&bytes.unwrap_or_default()).unwrap_or_default();
    (status, value)
}

/// How many variants [`GatewayError`] has.
const VARIANTS: usize = 23;

/// The number of `e`'s variant. A new variant does not compile here: give it the next
/// number, bump [`VARIANTS`] and add it to [`every_variant`].
fn ordinal(e: &GatewayError) -> usize {
    use GatewayError as E;
    match e {
        E::InvalidRequest(_) => 0,
        E::BadFraming(_) => 1,
        E::InvalidCode { .. } => 2,
        E::CodeUsed { .. } => 3,
        E::UserBlocked { .. } => 4,
        E::Unauthenticated => 5,
        E::AccountNotBound => 6,
        E::Forbidden => 7,
        E::NotFound => 8,
        E::MethodNotAllowed { .. } => 9,
        E::AccountConflict => 10,
        E::PayloadTooLarge => 11,
        E::RequestTimeout => 12,
        E::RateLimited { .. } => 13,
        E::WechatRateLimited { .. } => 14,
        E::Internal(_) => 15,
        E::Wechat { .. } => 16,
        E::UpstreamUnavailable => 17,
        E::WechatUnavailable { .. } => 18,
        E::StoreUnavailable => 19,
        E::UpstreamTimeout => 20,
        E::DecryptFailed => 21,
        E::RiskBlocked => 22,
    }
}

/// A variant with the status, code, `wechat_errcode` and extra header the contract gives it.
type Row = (
    GatewayError,
    u16,
    &'static str,
    Option<i64>,
    Option<(&'static str, &'static str)>,
);

/// Every variant (some twice, with and without an errcode), as [`Row`]s.
fn every_variant() -> Vec<Row> {
    use GatewayError as E;
    vec![
        (E::invalid("bad"), 400, "invalid_request", None, None),
        (
            E::BadFraming("two lengths"),
            400,
            "invalid_request",
            None,
            Some(("connection", "close")),
        ),
        (
            E::InvalidCode { errcode: 40029 },
            400,
            "invalid_code",
            Some(40029),
            None,
        ),
        (
            E::CodeUsed { errcode: 40163 },
            400,
            "code_used",
            Some(40163),
            None,
        ),
        (
            E::UserBlocked { errcode: 40226 },
            403,
            "user_blocked",
            Some(40226),
            None,
        ),
        (
            E::Unauthenticated,
            401,
            "unauthenticated",
            None,
            Some(("www-authenticate", "Bearer")),
        ),
        (E::AccountNotBound, 403, "account_not_bound", None, None),
        (E::DecryptFailed, 400, "decrypt_failed", None, None),
        (E::RiskBlocked, 403, "user_blocked", None, None),
        (E::Forbidden, 403, "forbidden", None, None),
        (E::NotFound, 404, "not_found", None, None),
        (
            E::MethodNotAllowed { allow: "GET, HEAD" },
            405,
            "method_not_allowed",
            None,
            Some(("allow", "GET, HEAD")),
        ),
        (E::AccountConflict, 409, "account_conflict", None, None),
        (E::PayloadTooLarge, 413, "payload_too_large", None, None),
        (
            E::RequestTimeout,
            408,
            "request_timeout",
            None,
            Some(("connection", "close")),
        ),
        (
            E::RateLimited {
                retry_after_secs: 7,
            },
            429,
            "rate_limited",
            None,
            Some(("retry-after", "7")),
        ),
        (
            E::WechatRateLimited { errcode: 45011 },
            429,
            "rate_limited",
            Some(45011),
            Some(("retry-after", "60")),
        ),
        (
            E::Internal("disk on fire".into()),
            500,
            "internal_error",
            None,
            None,
        ),
        (
            E::Wechat {
                errcode: Some(40013),
                detail: "invalid appid".into(),
            },
            502,
            "wechat_error",
            Some(40013),
            None,
        ),
        (
            E::Wechat {
                errcode: None,
                detail: "watermark".into(),
            },
            502,
            "wechat_error",
            None,
            None,
        ),
        (
            E::UpstreamUnavailable,
            502,
            "upstream_unavailable",
            None,
            None,
        ),
        (
            E::WechatUnavailable { errcode: Some(-1) },
            503,
            "wechat_unavailable",
            Some(-1),
            None,
        ),
        (
            E::WechatUnavailable { errcode: None },
            503,
            "wechat_unavailable",
            None,
            None,
        ),
        (E::StoreUnavailable, 503, "store_unavailable", None, None),
        (E::UpstreamTimeout, 504, "upstream_timeout", None, None),
    ]
}

#[test]
fn the_table_covers_every_variant() {
    let mut seen: Vec<usize> = every_variant().iter().map(|(e, ..)| ordinal(e)).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
}

#[tokio::test]
async fn every_variant_renders_its_status_code_errcode_and_headers() {
    const EXTRA: [&str; 4] = ["connection", "www-authenticate", "allow", "retry-after"];
    for (error, status, code, errcode, extra) in every_variant() {
        let what = format!("{error:?}");
        assert_eq!(error.status().as_u16(), status, "{what}");
        assert_eq!(error.code(), code, "{what}");
        assert_eq!(error.wechat_errcode(), errcode, "{what}");
        let response = error.into_response();
        for name in EXTRA {
            let want = extra.filter(|(n, _)| *n == name).map(|(_, v)| v);
            let got = response.headers().get(name).and_then(|v| v.to_str().ok());
            assert_eq!(got, want, "{what}: header {name}");
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        assert_eq!(
            content_type,
            Some(HeaderValue::from_static("application/json"))
        );
        let (got_status, body) = body_json(response).await;
        assert_eq!(got_status.as_u16(), status, "{what}");
        let object = body["error"].as_object().cloned().unwrap_or_default();
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
        assert_eq!(
            object.get("code").and_then(|c| c.as_str()),
            Some(code),
            "{what}"
        );
        let message = object.get("message").and_then(|m| m.as_str()).unwrap_or("");
        assert!(!message.trim().is_empty(), "{what}: {body}");
        assert_eq!(
            object.get("wechat_errcode").and_then(|c| c.as_i64()),
            errcode,
            "{what}: {body}"
        );
    }
}

#[tokio::test]
async fn wechat_errors_carry_the_errcode() {
    let response = GatewayError::CodeUsed { errcode: 40163 }.into_response();
    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "code_used");
    assert_eq!(body["error"]["wechat_errcode"], 40163);
}

#[tokio::test]
async fn internal_details_are_not_shown() {
    let response = GatewayError::Internal("disk on fire".into()).into_response();
    let (status, body) = body_json(response).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("disk on fire"));
    assert!(body["error"].get("wechat_errcode").is_none());
}

/// Log lines written while `f` runs.
fn logs_of(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut sink = self.0.lock().unwrap_or_else(|p| p.into_inner());
            sink.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn an_internal_error_is_logged_where_it_is_rendered() {
    let id = HeaderValue::from_static("req-42");
    let logs =
        logs_of(|| drop(GatewayError::Internal("binding store: disk full".into()).render(&id)));
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("ERROR"), "{logs}");
    assert!(lines[0].contains("internal error"), "{logs}");
    assert!(lines[0].contains("request_id=\"req-42\""), "{logs}");
    assert!(lines[0].contains("binding store: disk full"), "{logs}");

    let logs = logs_of(|| drop(GatewayError::Internal("OS RNG failed".into()).into_response()));
    assert!(
        logs.contains("ERROR") && logs.contains("OS RNG failed"),
        "{logs}"
    );
    assert!(logs.contains("request_id=\"-\""), "{logs}");
}

#[test]
fn other_errors_are_not_logged_when_rendered() {
    let id = HeaderValue::from_static("req-43");
    let logs = logs_of(|| {
        for (error, ..) in every_variant() {
            if !matches!(error, GatewayError::Internal(_)) {
                drop(error.render(&id));
            }
        }
    });
    assert_eq!(logs, "");
}
