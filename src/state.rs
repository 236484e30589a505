//! The shared state every request sees, built once at start-up.
//!
//! `AppState` is immutable after construction (the accounts mapping swaps itself inside
//! its resolver); handlers get it through an `Arc` and never clone configuration per
//! request.

use std::sync::Arc;

use crate::accounts::{AccountResolver, BindingStore, LocalBindings};
use crate::config::{Config, RouteConfig, StoreKind};
use crate::http::{Client, client};
use crate::limit::LoginLimiter;
use crate::metrics::Metrics;
use crate::proxy::headers::IdentityNames;
use crate::session::SessionStore;
use crate::session::memory::MemoryStore;
use crate::wechat::WechatClient;
use crate::wechat::token::TokenManager;

/// A configured route with its metrics label prepared.
pub struct Route {
    pub config: RouteConfig,
    /// The route's label in metrics and logs (its prefix).
    pub label: Arc<str>,
    /// The upstream's path prefix, without a trailing slash ("" when none).
    pub upstream_path: String,
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
    pub upstream: Client,
    pub identity: IdentityNames,
    /// Labels for requests that match no route, or the auth endpoints.
    pub labels: Labels,
}

/// Metric labels that are not route prefixes.
pub struct Labels {
    pub login: Arc<str>,
    pub phone: Arc<str>,
    pub session: Arc<str>,
    pub logout: Arc<str>,
    pub none: Arc<str>,
}

impl AppState {
    /// Build the state for `config`; bindings persist under `[session] data_dir`.
    pub fn new(config: Config, accounts: Arc<AccountResolver>) -> Result<Self, String> {
        let bindings = match config.session.store {
            StoreKind::Memory => Arc::new(LocalBindings::open(&config.session.data_dir)?),
            StoreKind::Redis => Arc::new(LocalBindings::ephemeral()),
        };
        Self::with_bindings(config, accounts, bindings)
    }

    /// Build the state with an explicit binding store (the demo keeps them in memory).
    pub fn with_bindings(
        config: Config,
        accounts: Arc<AccountResolver>,
        bindings: Arc<dyn BindingStore>,
    ) -> Result<Self, String> {
        let store: Arc<dyn SessionStore> = match config.session.store {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
            StoreKind::Redis => {
                return Err(
                    "session.store = \"redis\" is not supported by this build yet; use \"memory\""
                        .into(),
                );
            }
        };
        let metrics = Arc::new(Metrics::new());
        let routes = config
            .routes
            .iter()
            .map(|r| Route {
                label: Arc::from(r.prefix.as_str()),
                upstream_path: r.upstream.path().trim_end_matches('/').to_string(),
                config: r.clone(),
            })
            .collect();
        let prefix = &config.server.auth_prefix;
        let labels = Labels {
            login: format!("{prefix}/login").into(),
            phone: format!("{prefix}/phone").into(),
            session: format!("{prefix}/session").into(),
            logout: format!("{prefix}/logout").into(),
            none: Arc::from("none"),
        };
        let wechat = Arc::new(WechatClient::new(config.wechat.clone(), metrics.clone()));
        Ok(Self {
            identity: IdentityNames::new(&config.identity_headers),
            tokens: TokenManager::new(&config.apps, wechat.clone()),
            wechat,
            bindings,
            limiter: Arc::new(LoginLimiter::new(config.rate_limit)),
            upstream: client(false),
            routes,
            store,
            accounts,
            metrics,
            labels,
            config,
        })
    }
}
