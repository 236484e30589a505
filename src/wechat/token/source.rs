//! Where an app's access_token comes from: the shared store when another replica already
//! has one, else stable_token under the shared lock (or directly, without a shared store);
//! and the background refresh inside stable_token's renewal window.
//!
//! A token WeChat refused here is never adopted from the store, and when stable_token still
//! answers it (its answers can lag behind an invalidation) it is asked once more, under the
//! same lock: a bounded, single-flight second fetch.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{AccessToken, AppTokens, SharedTokens};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::wechat::WechatClient;

/// stable_token hands out a new token only when the old one has less than this left.
const REFRESH_WINDOW: Duration = Duration::from_secs(300);
/// Jitter added to the start of the refresh window, so replicas do not ask in lock-step.
const MAX_JITTER: Duration = Duration::from_secs(20);
/// How long to wait before asking again after an unchanged token or a failure.
const RETRY_AFTER: Duration = Duration::from_secs(20);
/// How often a replica looks for another replica's fresh token while that one holds the lock.
const SHARED_POLL: Duration = Duration::from_millis(50);

#[derive(Deserialize)]
struct StableTokenAnswer {
    access_token: String,
    expires_in: u64,
}

/// The access_token in a stable_token answer whose errcode was already checked.
pub fn access_token(answer: Value) -> Result<AccessToken, GatewayError> {
    let answer = serde_json::from_value::<StableTokenAnswer>(answer)
        .ok()
        .filter(|a| !a.access_token.is_empty())
        .ok_or(GatewayError::Wechat {
            errcode: None,
            detail: "stable_token answer without access_token".into(),
        })?;
    Ok(AccessToken::expiring_in(
        Secret::new(answer.access_token),
        Duration::from_secs(answer.expires_in),
    ))
}

/// Where tokens come from: WeChat, through the shared store when there is one.
pub(super) struct Source {
    pub(super) wechat: Arc<WechatClient>,
    pub(super) shared: Option<Arc<dyn SharedTokens>>,
}

impl Source {
    /// A token when none is cached here: WeChat directly, or the shared store's (fetching
    /// it under the shared lock when it has none fit to use).
    pub(super) async fn obtain(&self, app: &AppTokens) -> Result<AccessToken, GatewayError> {
        let Some(shared) = &self.shared else {
            return self.fetch_usable(app).await;
        };
        let appid = app.app.appid.as_str();
        let deadline = Instant::now() + self.wechat.timeout() * 2;
        loop {
            if let Some(t) = shared.load(appid).await?.filter(|t| app.usable(t)) {
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
    /// `current` or refused here), else fetch one and store it if it is new (an unchanged
    /// token is already there, or was expired meanwhile and must not come back). Returns
    /// the token and whether it is new.
    async fn fetch_and_share(
        &self,
        shared: &dyn SharedTokens,
        app: &AppTokens,
        current: Option<&AccessToken>,
    ) -> Result<(AccessToken, bool), GatewayError> {
        let appid = app.app.appid.as_str();
        let differs = |t: &AccessToken| current.is_none_or(|c| c.token != t.token);
        if let Some(t) = shared.load(appid).await?
            && app.usable(&t)
            && differs(&t)
        {
            return Ok((t, true));
        }
        let fresh = self.fetch_usable(app).await?;
        let changed = differs(&fresh);
        if changed {
            shared.save(appid, &fresh).await?;
        }
        Ok((fresh, changed))
    }

    /// stable_token's answer, asked once more when it is a token WeChat refused here (its
    /// answers can lag behind an invalidation). Given twice, it is WeChat's current token
    /// after all and is forgiven.
    async fn fetch_usable(&self, app: &AppTokens) -> Result<AccessToken, GatewayError> {
        let fresh = self.fetch(app).await?;
        if !app.refused(&fresh) {
            return Ok(fresh);
        }
        let appid = app.app.appid.as_str();
        tracing::info!(
            appid,
            "stable_token answered a refused access_token; asking again"
        );
        let again = self.fetch(app).await?;
        if app.refused(&again) {
            tracing::warn!(appid, "stable_token insists on a refused access_token");
            app.forgive(&again);
        }
        Ok(again)
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
            .and_then(access_token);
        match answer {
            Ok(token) => {
                metrics.record_token_event("fetched");
                Ok(token)
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
                let fresh = self.fetch_usable(app).await?;
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
        app.store(&fresh);
        Ok(changed)
    }
}

/// Refresh each token once it enters stable_token's renewal window.
pub(super) async fn refresh_loop(app: Weak<AppTokens>, source: Arc<Source>) {
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
    let cap = crate::clock::millis(MAX_JITTER.min(left / 10));
    Duration::from_millis(getrandom::u64().unwrap_or(0) % cap.max(1))
}

/// Ask more often as expiry nears: a quarter of what is left, between 200 ms and 20 s.
fn retry_after(left: Duration) -> Duration {
    (left / 4).clamp(Duration::from_millis(200), RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found reading the fuzz target's code: an `expires_in` near `u64::MAX` overflowed
    /// `Instant` and panicked on the token-fetch path.
    #[tokio::test]
    async fn a_huge_expires_in_is_read_as_at_most_a_day() {
        let answer = serde_json::json!({"access_token": "AT", "expires_in": u64::MAX});
        let token = access_token(answer).map_err(|e| e.to_string());
        let left = token.as_ref().map(AccessToken::expires_in);
        assert!(
            matches!(left, Ok(s) if s > 86_000 && s <= 86_400),
            "{left:?}"
        );
        let normal = serde_json::json!({"access_token": "AT", "expires_in": 7200});
        let left = access_token(normal).map(|t| t.expires_in()).ok();
        assert!(matches!(left, Some(7199 | 7200)), "{left:?}");
    }
}
