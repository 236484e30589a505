//! The shared state every request sees, built once at start-up.
//!
//! `AppState` is immutable after construction (the accounts mapping swaps itself inside
//! its resolver); handlers get it through an `Arc` and never clone configuration per
//! request. [`Backends`] is where the memory and Redis deployments differ.

use std::sync::Arc;

use http::HeaderValue;

use crate::accounts::redis_bindings::RedisBindings;
use crate::accounts::{AccountResolver, BindingStore, LocalBindings};
use crate::assertion::Signer;
use crate::config::{Config, RouteConfig, StoreKind};
use crate::limit::LoginLimiter;
use crate::metrics::Metrics;
use crate::redis::RedisBackend;
use crate::redis::tokens::RedisTokens;
use crate::session::SessionStore;
use crate::session::identity::Resolver;
use crate::session::memory::MemoryStore;
use crate::session::redis::RedisStore;
use crate::wechat::WechatClient;
use crate::wechat::token::{SharedTokens, TokenManager};

/// A configured route with what requests need of it prepared.
pub struct Route {
    pub config: RouteConfig,
    /// Its place in `[[routes]]`, which also indexes each worker's upstream pools.
    pub index: usize,
    /// The route's label in metrics and logs (its prefix).
    pub label: Arc<str>,
    /// The upstream's path prefix, without a trailing slash ("" when none).
    pub upstream_path: String,
    /// The upstream's authority, the `Host` of a request that came without one.
    pub upstream_host: Option<HeaderValue>,
}

/// Where sessions, bindings and access_tokens live.
pub struct Backends {
    pub sessions: Arc<dyn SessionStore>,
    pub bindings: Arc<dyn BindingStore>,
    /// Shared tokens across replicas; `None` keeps them in this process.
    pub tokens: Option<Arc<dyn SharedTokens>>,
}

impl Backends {
    /// The backends `[session] store` names: memory (bindings on local disk) or Redis.
    pub fn from_config(config: &Config, metrics: &Arc<Metrics>) -> Result<Self, String> {
        match (config.session.store, &config.redis) {
            (StoreKind::Memory, _) => Ok(Self {
                sessions: Arc::new(MemoryStore::new()),
                bindings: Arc::new(LocalBindings::open(&config.session.data_dir)?),
                tokens: None,
            }),
            (StoreKind::Redis, Some(redis)) => {
                let backend = Arc::new(RedisBackend::new(redis, metrics.clone())?);
                Ok(Self {
                    sessions: Arc::new(RedisStore::new(backend.clone())),
                    bindings: Arc::new(RedisBindings::new(backend.clone())),
                    tokens: Some(Arc::new(RedisTokens::new(backend))),
                })
            }
            (StoreKind::Redis, None) => {
                Err("session.store = \"redis\" needs a [redis] section".into())
            }
        }
    }

    /// Everything in this process's memory (the demo).
    pub fn in_memory() -> Self {
        Self {
            sessions: Arc::new(MemoryStore::new()),
            bindings: Arc::new(LocalBindings::ephemeral()),
            tokens: None,
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub routes: Vec<Route>,
    pub store: Arc<dyn SessionStore>,
    pub accounts: Arc<AccountResolver>,
    pub bindings: Arc<dyn BindingStore>,
    pub wechat: Arc<WechatClient>,
    pub tokens: TokenManager,
    pub limiter: Arc<LoginLimiter>,
    pub metrics: Arc<Metrics>,
    /// Labels for requests that match no route, or the auth endpoints.
    pub labels: Labels,
    /// Signs `X-WX-JWT-ASSERTION`; `None` when `[identity_token]` is off.
    pub signer: Option<Signer>,
}

/// Metric labels that are not route prefixes.
pub struct Labels {
    pub login: Arc<str>,
    pub phone: Arc<str>,
    pub session: Arc<str>,
    pub logout: Arc<str>,
    pub decrypt: Arc<str>,
    pub none: Arc<str>,
}

impl AppState {
    /// Build the state for `config` with the backends it names.
    pub fn new(config: Config, accounts: Arc<AccountResolver>) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::new());
        let backends = Backends::from_config(&config, &metrics)?;
        Ok(Self::assemble(config, accounts, backends, metrics))
    }

    /// Build the state over explicit backends.
    pub fn assemble(
        config: Config,
        accounts: Arc<AccountResolver>,
        backends: Backends,
        metrics: Arc<Metrics>,
    ) -> Self {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, r)| Route {
                index,
                label: Arc::from(r.prefix.as_str()),
                upstream_path: r.upstream.path().trim_end_matches('/').to_string(),
                upstream_host: r
                    .upstream
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
                config: r.clone(),
            })
            .collect();
        let prefix = &config.server.auth_prefix;
        let labels = Labels {
            login: format!("{prefix}/login").into(),
            phone: format!("{prefix}/phone").into(),
            session: format!("{prefix}/session").into(),
            logout: format!("{prefix}/logout").into(),
            decrypt: format!("{prefix}/decrypt").into(),
            none: Arc::from("none"),
        };
        let wechat = Arc::new(WechatClient::new(config.wechat.clone(), metrics.clone()));
        Self {
            signer: config.identity_token.as_ref().map(Signer::new),
            tokens: TokenManager::new(&config.apps, wechat.clone(), backends.tokens),
            wechat,
            store: backends.sessions,
            bindings: backends.bindings,
            limiter: Arc::new(LoginLimiter::new(config.rate_limit)),
            routes,
            accounts,
            metrics,
            labels,
            config,
        }
    }

    /// Where sessions' identities are resolved from.
    pub fn identities(&self) -> Resolver<'_> {
        Resolver {
            accounts: &self.accounts,
            bindings: &*self.bindings,
            names: &self.config.identity_headers,
            signed_routes: if self.signer.is_some() {
                self.routes.len()
            } else {
                0
            },
        }
    }
}
