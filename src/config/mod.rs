//! Configuration: the TOML file turned into typed, validated values.
//!
//! Loading runs in two stages, as rust-rpxy does: `raw` is what serde reads (unknown keys
//! rejected), `validate` turns it into the typed [`Config`] below, with messages that name
//! the key and what to fix. Nothing here starts a server or touches the network.

mod expand;
mod identity_token;
mod raw;
mod services;
mod upstream_tls;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Uri};
use ipnet::IpNet;

use crate::secret::Secret;

pub use identity_token::IdentityTokenConfig;
pub use services::{DEFAULT_RELAY_PATHS, RelayConfig, RiskConfig};
pub use validate::parse_duration;

/// Why a configuration could not be loaded; the message names the key when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("`{key}`: {problem}")]
    Key { key: String, problem: String },
}

impl ConfigError {
    pub(crate) fn key(key: &str, problem: impl Into<String>) -> Self {
        Self::Key {
            key: key.to_string(),
            problem: problem.into(),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub wechat: WechatConfig,
    pub apps: Vec<AppConfig>,
    pub session: SessionConfig,
    pub rate_limit: RateLimitConfig,
    pub redis: Option<RedisConfig>,
    pub accounts: AccountsConfig,
    pub routes: Vec<RouteConfig>,
    pub identity_headers: IdentityHeaders,
    pub log: LogConfig,
    pub token_server: TokenServerConfig,
    pub relay: RelayConfig,
    pub risk: RiskConfig,
    /// The signed identity assertion; `None` when `[identity_token]` is off.
    pub identity_token: Option<IdentityTokenConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    pub auth_prefix: String,
    /// A request body (or a client reading a response) that moves no byte this long is cut off.
    pub body_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Peers (the socket peer, never X-Forwarded-For) that may use the data endpoints.
    pub allow: Vec<IpNet>,
    /// When set, data endpoints also need `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct WechatConfig {
    /// Scheme and authority (and optional path prefix) without a trailing slash.
    pub api_base: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub appid: String,
    pub secret: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreKind,
    pub ttl: Duration,
    pub data_dir: PathBuf,
    /// Live sessions a user may hold; a login past it ends the oldest (0: no limit).
    pub max_per_user: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct RateLimitConfig {
    /// 0 turns the limit off.
    pub login_per_minute: u32,
    pub login_burst: u32,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Secret,
    pub key_prefix: String,
    pub encryption_key: Secret,
    pub cluster: bool,
    pub nodes: Vec<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unbound {
    Allow,
    Reject,
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub file: Option<PathBuf>,
    pub unbound: Unbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Required,
    Optional,
    Public,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub prefix: String,
    pub upstream: Uri,
    pub auth: AuthMode,
    pub timeout: Duration,
    /// `ca_file`, resolved: the only CA an `https://` upstream is verified against.
    pub ca_file: Option<PathBuf>,
    /// For an `https://` upstream: the rustls client config (its roots, ALPN `http/1.1`),
    /// built once at load. `None` for `http://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The signed identity's `aud` on this route: `audience`, else the prefix.
    pub audience: std::sync::Arc<str>,
}

/// The header names under which identity reaches the upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub openid: HeaderName,
    pub appid: HeaderName,
    pub unionid: HeaderName,
    pub account_id: HeaderName,
    pub phone: HeaderName,
    /// The login risk rank (`[risk]`), when the check ran.
    pub risk_rank: HeaderName,
}

/// The admin listener's access_token endpoint for the company's other services.
#[derive(Debug, Clone)]
pub struct TokenServerConfig {
    pub enabled: bool,
    pub allow: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Keys whose values are secrets: no message ever shows their value.
const SECRET_KEYS: [&str; 6] = [
    "secret",
    "url",
    "nodes",
    "encryption_key",
    "token",
    "signing_key",
];

/// Whether a key path such as `redis.nodes[0]` ends in (or passes through) a secret key.
fn is_secret_key(path: &str) -> bool {
    path.split('.')
        .map(|segment| segment.split('[').next().unwrap_or(segment))
        .any(|name| SECRET_KEYS.contains(&name))
}

/// serde's type errors quote the value (`invalid type: string "redis://:pw@…"`); for a
/// secret-bearing key keep only what was expected.
fn redact_problem(key: &str, problem: String) -> String {
    if !is_secret_key(key) {
        return problem;
    }
    match problem.split_once(", expected ") {
        Some((_, expected)) => format!("has the wrong type (value not shown), expected {expected}"),
        None => "has an invalid value (not shown: the key holds a secret)".to_string(),
    }
}

/// A TOML syntax error as line, column and message, without the quoted source line (which
/// could be a secret's).
fn syntax_error(e: &toml::de::Error, text: &str) -> ConfigError {
    let at = e.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigError::Syntax(format!(
        "TOML syntax error at {}{}",
        at.unwrap_or_default(),
        e.message().trim()
    ))
}

impl Config {
    /// Read, expand and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        Self::from_toml(&text, base)
    }

    /// Parse configuration text; relative paths are resolved against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(&e, text))?;
        expand::expand_env(&mut table)?;
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let problem = e.into_inner().to_string().trim().to_string();
                ConfigError::key(&key, redact_problem(&key, problem))
            })?;
        validate::validate(raw, base)
    }

    /// The app with this appid, or the only one when `appid` is absent and one is configured.
    pub fn app(&self, appid: Option<&str>) -> Option<&AppConfig> {
        match appid {
            Some(id) => self.apps.iter().find(|a| a.appid == id),
            None if self.apps.len() == 1 => self.apps.first(),
            None => None,
        }
    }

    /// A one-line description for `check-config`.
    pub fn summary(&self) -> String {
        let store = match self.session.store {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        };
        format!(
            "config ok: listen {}{}, admin {}, {} app(s), {} route(s), store {store}, session ttl {}",
            self.server.listen,
            if self.server.tls.is_some() {
                " (tls)"
            } else {
                ""
            },
            self.admin.listen,
            self.apps.len(),
            self.routes.len(),
            humantime::format_duration(self.session.ttl),
        )
    }
}
