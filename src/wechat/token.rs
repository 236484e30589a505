//! The access_token manager: one cached token per app, refreshed ahead of expiry.
//!
//! Tokens come from `POST /cgi-bin/stable_token` in normal mode. Fetches are single-flight
//! (any number of waiting callers cause one WeChat call; with a [`SharedTokens`] backend,
//! one call across all replicas, under a lock). A background task starts asking once at
//! most five minutes remain — the only window in which stable_token hands out a new token —
//! treats an unchanged answer as "not yet", and keeps serving the old token meanwhile. A
//! token WeChat rejected is expired only if it is still the cached one (compare-then-expire),
//! so a burst of failures causes one refresh, not many.

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
/// How often a replica looks for another replica's fresh token while that one holds the lock.
const SHARED_POLL: Duration = Duration::from_millis(50);

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

/// Where replicas share their tokens (Redis): one refresh under a lock for all of them.
#[async_trait::async_trait]
pub trait SharedTokens: Send + Sync + 'static {
    /// The app's stored token, if any.
    async fn load(&self, appid: &str) -> Result<Option<AccessToken>, GatewayError>;
    /// Store the app's token until it expires.
    async fn save(&self, appid: &str, token: &AccessToken) -> Result<(), GatewayError>;
    /// Delete the stored token only if it is `failed` (compare-then-expire).
    async fn expire_if(&self, appid: &str, failed: &str) -> Result<bool, GatewayError>;
    /// Take the app's refresh lock; `Some(lock id)` when taken.
    async fn try_lock(&self, appid: &str) -> Result<Option<String>, GatewayError>;
    /// Release the lock if it is still ours.
    async fn unlock(&self, appid: &str, lock: &str) -> Result<(), GatewayError>;
}

#[derive(Deserialize)]
struct StableTokenAnswer {
    access_token: String,
    expires_in: u64,
}

struct AppTokens {
    app: AppConfig,
    current: Mutex<Option<AccessToken>>,
    /// Held while a fetch is in flight in this process: the single-flight gate.
    fetching: tokio::sync::Mutex<()>,
    refresher: std::sync::Once,
}

/// Where tokens come from: WeChat, through the shared store when there is one.
struct Source {
    wechat: Arc<WechatClient>,
    shared: Option<Arc<dyn SharedTokens>>,
}

/// Access tokens for every configured app.
pub struct TokenManager {
    apps: HashMap<String, Arc<AppTokens>>,
    source: Arc<Source>,
}

impl TokenManager {
    pub fn new(
        apps: &[AppConfig],
        wechat: Arc<WechatClient>,
        shared: Option<Arc<dyn SharedTokens>>,
    ) -> Self {
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
        Self {
            apps,
            source: Arc::new(Source { wechat, shared }),
        }
    }

    fn app(&self, appid: &str) -> Result<&Arc<AppTokens>, GatewayError> {
        self.apps
            .get(appid)
            .ok_or_else(|| GatewayError::invalid("unknown `appid`"))
    }

    /// A valid token for the app: the cached one, or one obtained now (single-flight).
    pub async fn get(&self, appid: &str) -> Result<AccessToken, GatewayError> {
        let app = self.app(appid)?;
        if let Some(t) = app.cached() {
            return Ok(t);
        }
        let _gate = app.fetching.lock().await;
        if let Some(t) = app.cached() {
            return Ok(t);
        }
        let fresh = self.source.obtain(app).await?;
        app.store(fresh.clone());
        app.refresher.call_once(|| {
            tokio::spawn(refresh_loop(Arc::downgrade(app), self.source.clone()));
        });
        Ok(fresh)
    }

    /// Compare-then-expire: forget `failed` only if it is still the cached token, here
    /// and in the shared store.
    pub async fn expire_if_current(&self, appid: &str, failed: &str) {
        let Some(app) = self.apps.get(appid) else {
            return;
        };
        let expired_here = app.expire_if(failed);
        let expired_shared = match &self.source.shared {
            Some(shared) => shared.expire_if(appid, failed).await.unwrap_or(false),
            None => false,
        };
        if expired_here || expired_shared {
            self.source.wechat.metrics().record_token_event("expired");
        }
    }

    /// Run a call that needs the app's token; on 40001/40014/42001 expire that token (if
    /// still current), obtain a fresh one and run the call once more.
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
                self.expire_if_current(appid, first.token.expose()).await;
                let second = self.get(appid).await?;
                call(second.token).await
            }
            other => other,
        }
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

    fn expire_if(&self, failed: &str) -> bool {
        let Ok(mut current) = self.current.lock() else {
            return false;
        };
        let matches = current.as_ref().is_some_and(|t| t.token.expose() == failed);
        if matches {
            *current = None;
        }
        matches
    }
}

impl Source {
    /// A token when none is cached here: WeChat directly, or the shared store's (fetching
    /// it under the shared lock when it has none).
    async fn obtain(&self, app: &AppTokens) -> Result<AccessToken, GatewayError> {
        let Some(shared) = &self.shared else {
            return self.fetch(app).await;
        };
        let appid = app.app.appid.as_str();
        let deadline = Instant::now() + self.wechat.timeout() * 2;
        loop {
            if let Some(t) = shared.load(appid).await?.filter(AccessToken::is_valid) {
                return Ok(t);
            }
            if let Some(lock) = shared.try_lock(appid).await? {
                let result = self.fetch_and_share(shared.as_ref(), app, None).await;
                let _ = shared.unlock(appid, &lock).await;
                return result.map(|(t, _)| t);
            }
            if Instant::now() > deadline {
                return Err(GatewayError::WechatUnavailable { errcode: None });
            }
            tokio::time::sleep(SHARED_POLL).await;
        }
    }

    /// Under the shared lock: adopt a token another replica stored meanwhile (unless it is
    /// `current`), else fetch and store one. Returns the token and whether it is new.
    async fn fetch_and_share(
        &self,
        shared: &dyn SharedTokens,
        app: &AppTokens,
        current: Option<&AccessToken>,
    ) -> Result<(AccessToken, bool), GatewayError> {
        let appid = app.app.appid.as_str();
        let differs = |t: &AccessToken| current.is_none_or(|c| c.token != t.token);
        if let Some(t) = shared.load(appid).await?.filter(AccessToken::is_valid)
            && differs(&t)
        {
            return Ok((t, true));
        }
        let fresh = self.fetch(app).await?;
        let changed = differs(&fresh);
        shared.save(appid, &fresh).await?;
        Ok((fresh, changed))
    }

    /// Ask stable_token (normal mode) for the app's token.
    async fn fetch(&self, app: &AppTokens) -> Result<AccessToken, GatewayError> {
        let body = serde_json::json!({
            "grant_type": "client_credential",
            "appid": app.app.appid,
            "secret": app.app.secret.expose(),
            "force_refresh": false,
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let metrics = self.wechat.metrics();
        let answer = self
            .wechat
            .call(
                "stable_token",
                Method::POST,
                "/cgi-bin/stable_token",
                Some(body),
            )
            .await
            .and_then(|v| {
                serde_json::from_value::<StableTokenAnswer>(v)
                    .ok()
                    .filter(|a| !a.access_token.is_empty())
                    .ok_or(GatewayError::Wechat {
                        errcode: None,
                        detail: "stable_token answer without access_token".into(),
                    })
            });
        match answer {
            Ok(a) => {
                metrics.record_token_event("fetched");
                Ok(AccessToken {
                    token: Secret::new(a.access_token),
                    expires_at: Instant::now() + Duration::from_secs(a.expires_in),
                })
            }
            Err(e) => {
                metrics.record_token_event("fetch_failed");
                Err(e)
            }
        }
    }

    /// One background refresh: `Ok(true)` when a new token replaced the current one.
    async fn refresh(&self, app: &AppTokens) -> Result<bool, GatewayError> {
        let _gate = app.fetching.lock().await;
        let current = app.cached();
        let (fresh, changed) = match &self.shared {
            None => {
                let fresh = self.fetch(app).await?;
                let changed = current.as_ref().is_none_or(|c| c.token != fresh.token);
                (fresh, changed)
            }
            Some(shared) => {
                let Some(lock) = shared.try_lock(&app.app.appid).await? else {
                    return Ok(false);
                };
                let result = self
                    .fetch_and_share(shared.as_ref(), app, current.as_ref())
                    .await;
                let _ = shared.unlock(&app.app.appid, &lock).await;
                result?
            }
        };
        app.store(fresh);
        Ok(changed)
    }
}

/// Refresh each token once it enters stable_token's renewal window.
async fn refresh_loop(app: Weak<AppTokens>, source: Arc<Source>) {
    loop {
        let wake = {
            let Some(app) = app.upgrade() else { return };
            match app.cached() {
                Some(t) => {
                    let left = t.expires_at.saturating_duration_since(Instant::now());
                    t.expires_at
                        .checked_sub(REFRESH_WINDOW)
                        .unwrap_or_else(Instant::now)
                        + jitter(left)
                }
                None => Instant::now() + RETRY_AFTER,
            }
        };
        tokio::time::sleep_until(wake).await;
        let Some(app) = app.upgrade() else { return };
        let appid = app.app.appid.as_str();
        let outcome = source.refresh(&app).await;
        let left = app.cached().map_or(Duration::ZERO, |t| {
            t.expires_at.saturating_duration_since(Instant::now())
        });
        match outcome {
            Ok(true) => {
                tracing::info!(appid, "access_token refreshed");
                continue;
            }
            Ok(false) => tracing::debug!(appid, "access_token unchanged; asking again later"),
            Err(e) => tracing::warn!(
                appid,
                code = e.code(),
                "access_token refresh failed; serving the current token"
            ),
        }
        tokio::time::sleep(retry_after(left)).await;
    }
}

/// Spread replicas over the start of the window, never past a tenth of the token's life.
fn jitter(left: Duration) -> Duration {
    let cap = MAX_JITTER.min(left / 10).as_millis() as u64;
    Duration::from_millis(getrandom::u64().unwrap_or(0) % cap.max(1))
}

/// Ask more often as expiry nears: a quarter of what is left, between 200 ms and 20 s.
fn retry_after(left: Duration) -> Duration {
    (left / 4).clamp(Duration::from_millis(200), RETRY_AFTER)
}
