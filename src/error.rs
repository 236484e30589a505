//! The one error type whose variants are the contract's error codes.
//!
//! Every failure the gateway decides on becomes a [`GatewayError`]; [`GatewayError::into_response`]
//! is the single place that turns one into a status, headers and the contract's JSON body
//! `{"error": {"code", "message", "wechat_errcode"?}}`, and the one place that logs an
//! internal error's detail (which the client never sees). The match arms list every
//! variant, with no catch-all, so a new one forces a decision.

use std::borrow::Cow;

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::http::request_body::BodyError;
use crate::http::{Body, json};

/// A contract error; the variant names follow the contract's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    /// A request whose framing cannot be trusted (smuggling shapes, a broken chunked
    /// body): `invalid_request`, and the connection is closed.
    #[error("{0}")]
    BadFraming(&'static str),
    #[error(
        "the encrypted data does not decrypt with this session's key; log in again with wx.login, then retry"
    )]
    DecryptFailed,
    #[error("the login or phone code is invalid or expired")]
    InvalidCode { errcode: i64 },
    #[error("the code has already been used")]
    CodeUsed { errcode: i64 },
    #[error("WeChat blocked this user as high-risk")]
    UserBlocked { errcode: i64 },
    #[error("this login looks high-risk and was refused")]
    RiskBlocked,
    #[error("a valid gateway token is required")]
    Unauthenticated,
    #[error("this session is not bound to an account")]
    AccountNotBound,
    #[error("this client may not use this endpoint")]
    Forbidden,
    #[error("no route matches this path")]
    NotFound,
    #[error("this endpoint does not take that method")]
    MethodNotAllowed { allow: &'static str },
    #[error("the verified phone belongs to another account than this session's")]
    AccountConflict,
    #[error("the request body is larger than the gateway accepts")]
    PayloadTooLarge,
    #[error("the request body stalled; send it without pauses")]
    RequestTimeout,
    #[error("too many login attempts; retry later")]
    RateLimited { retry_after_secs: u64 },
    #[error("WeChat's rate limit was reached; retry later")]
    WechatRateLimited { errcode: i64 },
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
    #[error("WeChat answered with an error: {detail}")]
    Wechat {
        errcode: Option<i64>,
        detail: Cow<'static, str>,
    },
    #[error("the upstream service could not be reached")]
    UpstreamUnavailable,
    #[error("WeChat is unavailable; retry later")]
    WechatUnavailable { errcode: Option<i64> },
    #[error("the session store cannot be reached")]
    StoreUnavailable,
    #[error("the upstream service did not answer in time")]
    UpstreamTimeout,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'static str,
    message: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wechat_errcode: Option<i64>,
}

impl GatewayError {
    /// Convenience constructor for a 400 with a fixed message.
    pub fn invalid(message: &'static str) -> Self {
        Self::InvalidRequest(Cow::Borrowed(message))
    }

    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::BadFraming(_) => "invalid_request",
            Self::DecryptFailed => "decrypt_failed",
            Self::InvalidCode { .. } => "invalid_code",
            Self::CodeUsed { .. } => "code_used",
            Self::UserBlocked { .. } | Self::RiskBlocked => "user_blocked",
            Self::Unauthenticated => "unauthenticated",
            Self::AccountNotBound => "account_not_bound",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::AccountConflict => "account_conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::RateLimited { .. } | Self::WechatRateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal_error",
            Self::Wechat { .. } => "wechat_error",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::WechatUnavailable { .. } => "wechat_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The HTTP status the contract assigns to the code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_)
            | Self::BadFraming(_)
            | Self::DecryptFailed
            | Self::InvalidCode { .. }
            | Self::CodeUsed { .. } => StatusCode::BAD_REQUEST,
            Self::UserBlocked { .. }
            | Self::RiskBlocked
            | Self::AccountNotBound
            | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::AccountConflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::RateLimited { .. } | Self::WechatRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Wechat { .. } | Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::WechatUnavailable { .. } | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The WeChat errcode behind the error, when WeChat caused it.
    pub fn wechat_errcode(&self) -> Option<i64> {
        match self {
            Self::InvalidCode { errcode }
            | Self::CodeUsed { errcode }
            | Self::UserBlocked { errcode }
            | Self::WechatRateLimited { errcode } => Some(*errcode),
            Self::Wechat { errcode, .. } | Self::WechatUnavailable { errcode } => *errcode,
            Self::InvalidRequest(_)
            | Self::BadFraming(_)
            | Self::DecryptFailed
            | Self::RiskBlocked
            | Self::Unauthenticated
            | Self::AccountNotBound
            | Self::Forbidden
            | Self::NotFound
            | Self::MethodNotAllowed { .. }
            | Self::AccountConflict
            | Self::PayloadTooLarge
            | Self::RequestTimeout
            | Self::RateLimited { .. }
            | Self::Internal(_)
            | Self::UpstreamUnavailable
            | Self::StoreUnavailable
            | Self::UpstreamTimeout => None,
        }
    }

    /// The message shown to the client: its own text, except where that is a detail for
    /// the log only.
    fn public_message(&self) -> Cow<'_, str> {
        if self.logged_detail().is_some() {
            Cow::Borrowed("internal error; the gateway log has details")
        } else {
            Cow::Owned(self.to_string())
        }
    }

    /// What goes to the log when the error is rendered: an internal error's detail (the
    /// client sees only that there was one). Details name what failed (`binding store:
    /// ...`, `OS RNG failed`), never a secret or a token.
    fn logged_detail(&self) -> Option<&str> {
        match self {
            Self::Internal(detail) => Some(detail),
            Self::InvalidRequest(_)
            | Self::BadFraming(_)
            | Self::DecryptFailed
            | Self::InvalidCode { .. }
            | Self::CodeUsed { .. }
            | Self::UserBlocked { .. }
            | Self::RiskBlocked
            | Self::Unauthenticated
            | Self::AccountNotBound
            | Self::Forbidden
            | Self::NotFound
            | Self::MethodNotAllowed { .. }
            | Self::AccountConflict
            | Self::PayloadTooLarge
            | Self::RequestTimeout
            | Self::RateLimited { .. }
            | Self::WechatRateLimited { .. }
            | Self::Wechat { .. }
            | Self::UpstreamUnavailable
            | Self::WechatUnavailable { .. }
            | Self::StoreUnavailable
            | Self::UpstreamTimeout => None,
        }
    }

    /// The headers the contract adds to this error's response.
    fn extra_header(&self) -> Option<(header::HeaderName, HeaderValue)> {
        match self {
            Self::Unauthenticated => {
                Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")))
            }
            Self::MethodNotAllowed { allow } => {
                Some((header::ALLOW, HeaderValue::from_static(allow)))
            }
            Self::RateLimited { retry_after_secs } => {
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)))
            }
            Self::WechatRateLimited { .. } => {
                Some((header::RETRY_AFTER, HeaderValue::from_static("60")))
            }
            // As nginx does: a client that stalls its body or frames it so that two
            // parsers could disagree does not keep the connection.
            Self::RequestTimeout | Self::BadFraming(_) => {
                Some((header::CONNECTION, HeaderValue::from_static("close")))
            }
            Self::InvalidRequest(_)
            | Self::DecryptFailed
            | Self::InvalidCode { .. }
            | Self::CodeUsed { .. }
            | Self::UserBlocked { .. }
            | Self::RiskBlocked
            | Self::AccountNotBound
            | Self::Forbidden
            | Self::NotFound
            | Self::AccountConflict
            | Self::PayloadTooLarge
            | Self::Internal(_)
            | Self::Wechat { .. }
            | Self::UpstreamUnavailable
            | Self::WechatUnavailable { .. }
            | Self::StoreUnavailable
            | Self::UpstreamTimeout => None,
        }
    }

    /// Render the error as the contract's JSON response; an internal error's detail is
    /// logged here (without a request id: see [`GatewayError::render`]).
    pub fn into_response(self) -> Response<Body> {
        self.respond(None)
    }

    /// Render the error as [`GatewayError::into_response`] does, logging an internal
    /// error's detail with the request it answers.
    pub fn render(self, request_id: &HeaderValue) -> Response<Body> {
        self.respond(Some(request_id))
    }

    fn respond(self, request_id: Option<&HeaderValue>) -> Response<Body> {
        if let Some(detail) = self.logged_detail() {
            let request_id = request_id.map_or("-", |id| id.to_str().unwrap_or("-"));
            tracing::error!(request_id, detail, "internal error");
        }
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code(),
                message: self.public_message(),
                wechat_errcode: self.wechat_errcode(),
            },
        };
        let mut response = json(self.status(), &body);
        if let Some((name, value)) = self.extra_header() {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests;

/// What a client whose request body stalled or broke is answered (if it still listens).
impl From<&BodyError> for GatewayError {
    fn from(e: &BodyError) -> Self {
        match e {
            BodyError::TimedOut => Self::RequestTimeout,
            BodyError::Broken(_) => Self::BadFraming(
                "the request body is malformed (bad chunked framing) or was cut off",
            ),
        }
    }
}
