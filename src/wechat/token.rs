//! The access_token manager: one cached token per app, refreshed ahead of expiry.
//!
//! Tokens come from `POST /cgi-bin/stable_token` in normal mode. Fetches are single-flight
//! (any number of waiting callers cause one WeChat call); a background task starts asking
//! once at most five minutes remain — the only window in which stable_token hands out a new
//! token — treats an unchanged answer as "not yet", and keeps serving the old token
//! meanwhile. A token that WeChat rejected is expired only if it is still the cached one
//! (compare-then-expire), so a burst of failures causes one refresh, not many.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use tokio::time::Instant;

use super::WechatClient;
use crate::config::AppConfig;
use crate::error::GatewayError;
use crate::secret::Secret;

/// stable_token hands out a new token only when the old one has less than this left.
const REFRESH_WINDOW: Duration = Duration::from_secs(300);
/// Jitter added to the start of the refresh window, so replicas do not ask in lock-step.
const MAX_JITTER: Duration = Duration::from_secs(20);
/// How long to wait before asking again after an unchanged token or a failure.
const RETRY_AFTER: Duration = Duration::from_secs(20);

/// A cached access_token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: Instant,
}

impl AccessToken {
    pub fn is_valid(&self) -> bool {
        self.expires_at > Instant::now()
    }

    /// Whole seconds left.
    pub fn expires_in(&self) -> u64 {
        self.expires_at
            .saturating_duration_since(Instant::now())
            .as_secs()
    }
}

#[derive(Deserialize)]
struct StableTokenAnswer {
    access_token: String,
    expires_in: u64,
}

struct AppTokens {
    app: AppConfig,
    current: Mutex<Option<AccessToken>>,
    /// Held while a fetch is in flight: the single-flight gate.
    fetching: tokio::sync::Mutex<()>,
    refresher: std::sync::Once,
}

/// Access tokens for every configured app.
pub struct TokenManager {
    apps: HashMap<String, Arc<AppTokens>>,
    wechat: Arc<WechatClient>,
}

impl TokenManager {
    pub fn new(apps: &[AppConfig], wechat: Arc<WechatClient>) -> Self {
        let apps = apps
            .iter()
            .map(|a| {
                let tokens = AppTokens {
                    app: a.clone(),
                    current: Mutex::new(None),
                    fetching: tokio::sync::Mutex::new(()),
                    refresher: std::sync::Once::new(),
                };
                (a.appid.clone(), Arc::new(tokens))
            })
            .collect();
        Self { apps, wechat }
    }

    fn app(&self, appid: &str) -> Result<&Arc<AppTokens>, GatewayError> {
        self.apps
            .get(appid)
            .ok_or_else(|| GatewayError::invalid("unknown `appid`"))
    }

    /// A valid token for the app: the cached one, or one fetched now (single-flight).
    pub async fn get(&self, appid: &str) -> Result<AccessToken, GatewayError> {
        let app = self.app(appid)?;
        if let Some(t) = app.cached() {
            return Ok(t);
        }
        let _gate = app.fetching.lock().await;
        if let Some(t) = app.cached() {
            return Ok(t);
        }
        let fresh = fetch(&self.wechat, app).await?;
        app.store(fresh.clone());
        self.start_refresher(app);
        Ok(fresh)
    }

    /// Compare-then-expire: forget `failed` only if it is still the cached token.
    pub fn expire_if_current(&self, appid: &str, failed: &str) {
        if let Some(app) = self.apps.get(appid)
            && let Ok(mut current) = app.current.lock()
            && current.as_ref().is_some_and(|t| t.token.expose() == failed)
        {
            *current = None;
            self.wechat.metrics().record_token_event("expired");
        }
    }

    /// Run a call that needs the app's token; on 40001/40014/42001 expire that token (if
    /// still cached), fetch a fresh one and run the call once more.
    pub async fn with_token<T, F, Fut>(&self, appid: &str, call: F) -> Result<T, GatewayError>
    where
        F: Fn(Secret) -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        let first = self.get(appid).await?;
        match call(first.token.clone()).await {
            Err(e)
                if e.wechat_errcode()
                    .is_some_and(super::errcode::is_token_error) =>
            {
                self.expire_if_current(appid, first.token.expose());
                let second = self.get(appid).await?;
                call(second.token).await
            }
            other => other,
        }
    }

    fn start_refresher(&self, app: &Arc<AppTokens>) {
        app.refresher.call_once(|| {
            let app = Arc::downgrade(app);
            let wechat = self.wechat.clone();
            tokio::spawn(refresh_loop(app, wechat));
        });
    }
}

impl AppTokens {
    fn cached(&self) -> Option<AccessToken> {
        self.current
            .lock()
            .ok()?
            .as_ref()
            .filter(|t| t.is_valid())
            .cloned()
    }

    fn store(&self, token: AccessToken) {
        if let Ok(mut current) = self.current.lock() {
            *current = Some(token);
        }
    }
}

/// Ask stable_token (normal mode) for the app's token.
async fn fetch(wechat: &WechatClient, app: &AppTokens) -> Result<AccessToken, GatewayError> {
    let body = serde_json::json!({
        "grant_type": "client_credential",
        "appid": app.app.appid,
        "secret": app.app.secret.expose(),
        "force_refresh": false,
    });
    let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let answer = wechat
        .call(
            "stable_token",
            Method::POST,
            "/cgi-bin/stable_token",
            Some(body),
        )
        .await;
    let answer = answer.and_then(|v| {
        serde_json::from_value::<StableTokenAnswer>(v).map_err(|_| GatewayError::Wechat {
            errcode: None,
            detail: "stable_token answer without access_token".into(),
        })
    });
    let metrics = wechat.metrics();
    match answer {
        Ok(a) if !a.access_token.is_empty() => {
            metrics.record_token_event("fetched");
            Ok(AccessToken {
                token: Secret::new(a.access_token),
                expires_at: Instant::now() + Duration::from_secs(a.expires_in),
            })
        }
        Ok(_) | Err(_) => {
            metrics.record_token_event("fetch_failed");
            Err(answer.err().unwrap_or(GatewayError::Wechat {
                errcode: None,
                detail: "empty access_token".into(),
            }))
        }
    }
}

/// Ask WeChat once more, keeping the current token if the answer is unchanged.
async fn refresh(wechat: &WechatClient, app: &AppTokens) -> Result<bool, GatewayError> {
    let _gate = app.fetching.lock().await;
    let fresh = fetch(wechat, app).await?;
    let changed = app.cached().is_none_or(|old| old.token != fresh.token);
    app.store(fresh);
    Ok(changed)
}

/// Refresh each token once it enters stable_token's renewal window.
async fn refresh_loop(app: Weak<AppTokens>, wechat: Arc<WechatClient>) {
    loop {
        let wake = {
            let Some(app) = app.upgrade() else { return };
            let cached = app.cached();
            match cached {
                Some(t) => {
                    t.expires_at
                        .checked_sub(REFRESH_WINDOW)
                        .unwrap_or_else(Instant::now)
                        + jitter()
                }
                None => Instant::now() + RETRY_AFTER,
            }
        };
        tokio::time::sleep_until(wake).await;
        let Some(app) = app.upgrade() else { return };
        match refresh(&wechat, &app).await {
            Ok(true) => tracing::info!(appid = %app.app.appid, "access_token refreshed"),
            Ok(false) => {
                tracing::debug!(appid = %app.app.appid, "stable_token returned the same token; asking again later");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Err(e) => {
                tracing::warn!(appid = %app.app.appid, code = e.code(), "access_token refresh failed; serving the current token");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

fn jitter() -> Duration {
    let r = getrandom::u64().unwrap_or(0);
    Duration::from_millis(r % (MAX_JITTER.as_millis() as u64))
}
