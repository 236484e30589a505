//! The access_token manager: one cached token per app, refreshed ahead of expiry.
//!
//! Tokens come from `POST /cgi-bin/stable_token` in normal mode. Fetches are single-flight
//! (any number of waiting callers cause one WeChat call; with a [`SharedTokens`] backend,
//! one call across all replicas, under a lock). A background task starts asking once at
//! most five minutes remain — the only window in which stable_token hands out a new token —
//! treats an unchanged answer as "not yet", and keeps serving the old token meanwhile. A
//! token WeChat rejected is expired only if it is still the cached one (compare-then-expire),
//! so a burst of failures causes one refresh, not many — and it is remembered: not cached
//! again nor adopted from the shared store (where a replica may have read it just before it
//! was expired), so the retry of a call it failed runs with another token. Only when
//! stable_token hands it out twice in a row is it WeChat's current token after all.

pub mod source;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use self::source::{Source, refresh_loop};
use super::WechatClient;
use crate::config::AppConfig;
use crate::error::GatewayError;
use crate::secret::Secret;

/// How many refused tokens an app remembers (the newest; WeChat never revives old ones).
const REFUSED_KEPT: usize = 4;

/// The longest lifetime a token is believed to have. WeChat's last 7200 s; a larger
/// `expires_in` (or a stored deadline far off) is read as this, so no answer can push a
/// deadline past what `Instant` holds, and a token is asked for again within a day.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// A cached access_token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: Instant,
}

impl AccessToken {
    /// A token that expires `left` from now (at most [`MAX_LIFETIME`]).
    pub fn expiring_in(token: Secret, left: Duration) -> Self {
        Self {
            token,
            expires_at: Instant::now() + left.min(MAX_LIFETIME),
        }
    }

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

/// One app's token state in this process.
struct AppTokens {
    app: AppConfig,
    slot: Mutex<Slot>,
    /// Held while a fetch is in flight in this process: the single-flight gate.
    fetching: tokio::sync::Mutex<()>,
    refresher: std::sync::Once,
}

/// The cached token and the tokens WeChat refused lately (never the cached one).
#[derive(Default)]
struct Slot {
    current: Option<AccessToken>,
    refused: VecDeque<Secret>,
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
                    slot: Mutex::default(),
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

    /// A valid token for the app that WeChat has not refused here: the cached one, or one
    /// obtained now (single-flight).
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
        app.store(&fresh);
        app.refresher.call_once(|| {
            tokio::spawn(refresh_loop(Arc::downgrade(app), self.source.clone()));
        });
        Ok(fresh)
    }

    /// `failed` was refused by WeChat: remember that, and forget it if it is still the
    /// cached token, here and in the shared store (compare-then-expire).
    pub async fn expire_if_current(&self, appid: &str, failed: &str) {
        let Some(app) = self.apps.get(appid) else {
            return;
        };
        let expired_here = app.refuse(failed);
        let expired_shared = match &self.source.shared {
            Some(shared) => shared.expire_if(appid, failed).await.unwrap_or(false),
            None => false,
        };
        if expired_here || expired_shared {
            self.source.wechat.metrics().record_token_event("expired");
        }
    }

    /// Run a call that needs the app's token; on 40001/40014/42001 expire that token (if
    /// still current), obtain another and run the call once more (with the same token only
    /// if stable_token handed it out twice since: then the refusal was WeChat's hiccup).
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
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self) -> Option<AccessToken> {
        self.slot()
            .current
            .as_ref()
            .filter(|t| t.is_valid())
            .cloned()
    }

    /// Cache `token`, unless WeChat refused it meanwhile (a caller may have loaded it from
    /// the shared store just before another expired it).
    fn store(&self, token: &AccessToken) {
        let mut slot = self.slot();
        if !slot.refused.contains(&token.token) {
            slot.current = Some(token.clone());
        }
    }

    /// Remember `failed` as refused; forget it if cached. True when it was the cached one.
    fn refuse(&self, failed: &str) -> bool {
        let mut slot = self.slot();
        if !slot.refused.iter().any(|t| t.expose() == failed) {
            if slot.refused.len() == REFUSED_KEPT {
                slot.refused.pop_front();
            }
            slot.refused.push_back(Secret::new(failed));
        }
        let cached = slot
            .current
            .as_ref()
            .is_some_and(|t| t.token.expose() == failed);
        if cached {
            slot.current = None;
        }
        cached
    }

    /// Whether WeChat refused `token` here.
    fn refused(&self, token: &AccessToken) -> bool {
        self.slot().refused.contains(&token.token)
    }

    /// Valid and not refused: fit to be cached, adopted or handed out.
    fn usable(&self, token: &AccessToken) -> bool {
        token.is_valid() && !self.refused(token)
    }

    /// stable_token insists on `token`: it is WeChat's current one after all.
    fn forgive(&self, token: &AccessToken) {
        self.slot().refused.retain(|t| *t != token.token);
    }
}
