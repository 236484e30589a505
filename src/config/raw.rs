//! The configuration file exactly as serde reads it.
//!
//! Every section rejects unknown keys, so a typo fails loudly instead of silently taking a
//! default. Defaults here are the contract's; nothing is validated yet (see `validate`).

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub wechat: RawWechat,
    #[serde(default)]
    pub apps: Vec<RawApp>,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub accounts: RawAccounts,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub identity_headers: RawIdentityHeaders,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub token_server: RawTokenServer,
    #[serde(default)]
    pub relay: super::services::RawRelay,
    #[serde(default)]
    pub risk: super::services::RawRisk,
    #[serde(default)]
    pub identity_token: super::identity_token::RawIdentityToken,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub tls: Option<RawTls>,
    pub max_body_bytes: u64,
    pub trusted_proxies: Vec<String>,
    pub header_read_timeout: String,
    pub idle_timeout: String,
    pub max_connections: usize,
    pub drain_timeout: String,
    pub auth_prefix: String,
    pub body_timeout: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            tls: None,
            max_body_bytes: 1_048_576,
            trusted_proxies: Vec::new(),
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            max_connections: 10_000,
            drain_timeout: "30s".into(),
            auth_prefix: "/wx".into(),
            body_timeout: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    pub listen: String,
    pub allow: Vec<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub max_connections: usize,
}

impl Default for RawAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9901".into(),
            allow: loopback(),
            token: None,
            token_file: None,
            max_connections: 256,
        }
    }
}

/// The default allow-list of the admin data endpoints and the token server.
fn loopback() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWechat {
    pub api_base: String,
    pub timeout: String,
}

impl Default for RawWechat {
    fn default() -> Self {
        Self {
            api_base: "https://api.weixin.qq.com".into(),
            timeout: "5s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub appid: String,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    pub store: String,
    pub ttl: String,
    pub data_dir: String,
    pub max_per_user: u32,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            store: "memory".into(),
            ttl: "7d".into(),
            data_dir: "./data".into(),
            max_per_user: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    pub login_per_minute: u32,
    pub login_burst: u32,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        Self {
            login_per_minute: 30,
            login_burst: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub url_file: Option<String>,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    #[serde(default)]
    pub cluster: bool,
    #[serde(default)]
    pub nodes: Vec<String>,
}

fn default_key_prefix() -> String {
    "wxgate:".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccounts {
    pub file: Option<String>,
    pub unbound: String,
}

impl Default for RawAccounts {
    fn default() -> Self {
        Self {
            file: None,
            unbound: "allow".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub upstream: String,
    #[serde(default = "default_auth")]
    pub auth: String,
    #[serde(default = "default_route_timeout")]
    pub timeout: String,
    /// CA certificates (PEM) an `https://` upstream must chain to, instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The signed identity's `aud` on this route (default: the prefix).
    #[serde(default)]
    pub audience: Option<String>,
}

fn default_auth() -> String {
    "required".into()
}

fn default_route_timeout() -> String {
    "30s".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentityHeaders {
    pub openid: String,
    pub appid: String,
    pub unionid: String,
    pub account_id: String,
    pub phone: String,
    pub risk_rank: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        Self {
            openid: "X-WX-OPENID".into(),
            appid: "X-WX-APPID".into(),
            unionid: "X-WX-UNIONID".into(),
            account_id: "X-WX-ACCOUNT-ID".into(),
            phone: "X-WX-PHONE".into(),
            risk_rank: "X-WX-RISK-RANK".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTokenServer {
    pub enabled: bool,
    pub allow: Vec<String>,
}

impl Default for RawTokenServer {
    fn default() -> Self {
        Self {
            enabled: false,
            allow: loopback(),
        }
    }
}
