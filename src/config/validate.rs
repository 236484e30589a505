//! Raw (serde) configuration → typed [`Config`], one section at a time.
//!
//! Each check names the key it rejects and what a valid value looks like. Paths are made
//! absolute against the config file's directory; secrets are wrapped in [`Secret`] as
//! soon as they are read.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use http::{HeaderName, Uri};
use ipnet::IpNet;

use super::expand::inline_or_file;
use super::raw::*;
use super::*;

pub fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let session = session(raw.session, base)?;
    let redis = match raw.redis {
        Some(r) => Some(redis(r, base)?),
        None if session.store == StoreKind::Redis => {
            return Err(ConfigError::key(
                "redis",
                "required when session.store = \"redis\"",
            ));
        }
        None => None,
    };
    Ok(Config {
        server: server(raw.server, base)?,
        admin: admin(raw.admin, base)?,
        wechat: wechat(raw.wechat)?,
        apps: apps(raw.apps, base)?,
        session,
        rate_limit: RateLimitConfig {
            login_per_minute: raw.rate_limit.login_per_minute,
            login_burst: rate_limit_burst(&raw.rate_limit)?,
        },
        redis,
        accounts: accounts(raw.accounts, base)?,
        routes: routes(raw.routes, base)?,
        identity_headers: identity_headers(raw.identity_headers)?,
        log: log(raw.log)?,
        token_server: TokenServerConfig {
            enabled: raw.token_server.enabled,
            allow: cidrs("token_server.allow", &raw.token_server.allow)?,
        },
        relay: super::services::relay(raw.relay)?,
        risk: super::services::risk(raw.risk)?,
        identity_token: super::identity_token::identity_token(raw.identity_token, base)?,
    })
}

fn rate_limit_burst(raw: &RawRateLimit) -> Result<u32, ConfigError> {
    if raw.login_per_minute > 0 && raw.login_burst == 0 {
        return Err(ConfigError::key(
            "rate_limit.login_burst",
            "must be at least 1 (set login_per_minute = 0 to turn the limit off)",
        ));
    }
    Ok(raw.login_burst.max(1))
}

/// Parse a duration such as `"500ms"`, `"5s"`, `"2h"` or `"7d"`; zero is refused.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::key(
            key,
            format!("{value:?} is not a duration like \"5s\" or \"7d\" ({e})"),
        )
    })?;
    if d.is_zero() {
        return Err(ConfigError::key(key, "must be greater than zero"));
    }
    Ok(d)
}

fn socket_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        ConfigError::key(
            key,
            format!("{value:?} is not a socket address like \"0.0.0.0:8080\""),
        )
    })
}

/// Every entry of a CIDR list, each error naming its index.
fn cidrs(key: &str, values: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    values
        .iter()
        .enumerate()
        .map(|(i, s)| cidr(&format!("{key}[{i}]"), s))
        .collect()
}

fn admin(raw: RawAdmin, base: &Path) -> Result<AdminConfig, ConfigError> {
    if raw.max_connections == 0 {
        return Err(ConfigError::key(
            "admin.max_connections",
            "must be at least 1",
        ));
    }
    let token = inline_or_file("admin.token", raw.token, raw.token_file, base)?;
    if token.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(ConfigError::key(
            "admin.token",
            "must be at least 16 characters (e.g. `openssl rand -base64 32`)",
        ));
    }
    Ok(AdminConfig {
        listen: socket_addr("admin.listen", &raw.listen)?,
        allow: cidrs("admin.allow", &raw.allow)?,
        token: token.map(Secret::new),
        max_connections: raw.max_connections,
    })
}

fn resolve(base: &Path, value: &str) -> PathBuf {
    base.join(value)
}

fn server(raw: RawServer, base: &Path) -> Result<ServerConfig, ConfigError> {
    let trusted_proxies = cidrs("server.trusted_proxies", &raw.trusted_proxies)?;
    if raw.max_connections == 0 {
        return Err(ConfigError::key(
            "server.max_connections",
            "must be at least 1",
        ));
    }
    let prefix = raw.auth_prefix.trim_end_matches('/').to_string();
    if !prefix.is_empty() && !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
        return Err(ConfigError::key(
            "server.auth_prefix",
            "must be a path like \"/wx\"",
        ));
    }
    Ok(ServerConfig {
        listen: socket_addr("server.listen", &raw.listen)?,
        tls: raw.tls.map(|t| TlsConfig {
            cert: resolve(base, &t.cert),
            key: resolve(base, &t.key),
        }),
        max_body_bytes: raw.max_body_bytes,
        trusted_proxies,
        header_read_timeout: parse_duration(
            "server.header_read_timeout",
            &raw.header_read_timeout,
        )?,
        idle_timeout: parse_duration("server.idle_timeout", &raw.idle_timeout)?,
        max_connections: raw.max_connections,
        drain_timeout: parse_duration("server.drain_timeout", &raw.drain_timeout)?,
        auth_prefix: prefix,
        body_timeout: parse_duration("server.body_timeout", &raw.body_timeout)?,
    })
}

/// A CIDR (`10.0.0.0/8`) or a bare address (one host).
pub(crate) fn cidr(key: &str, value: &str) -> Result<IpNet, ConfigError> {
    let value = value.trim();
    if let Ok(net) = value.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    value
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| ConfigError::key(key, format!("{value:?} is not a CIDR like \"10.0.0.0/8\"")))
}

fn http_uri(key: &str, value: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = value
        .trim()
        .parse()
        .map_err(|_| ConfigError::key(key, format!("{value:?} is not a URL")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(ConfigError::key(
                key,
                format!("{value:?} must start with http:// or https://"),
            ));
        }
    }
    if uri.authority().is_none() {
        return Err(ConfigError::key(key, format!("{value:?} has no host")));
    }
    if uri.query().is_some() {
        return Err(ConfigError::key(
            key,
            format!("{value:?} must not carry a query"),
        ));
    }
    Ok(uri)
}

fn wechat(raw: RawWechat) -> Result<WechatConfig, ConfigError> {
    let uri = http_uri("wechat.api_base", &raw.api_base)?;
    Ok(WechatConfig {
        api_base: uri.to_string().trim_end_matches('/').to_string(),
        timeout: parse_duration("wechat.timeout", &raw.timeout)?,
    })
}

fn apps(raw: Vec<RawApp>, base: &Path) -> Result<Vec<AppConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::key(
            "apps",
            "at least one [[apps]] with appid and secret is required",
        ));
    }
    let mut apps: Vec<AppConfig> = Vec::with_capacity(raw.len());
    for (i, app) in raw.into_iter().enumerate() {
        let key = format!("apps[{i}]");
        let appid = app.appid.trim().to_string();
        if appid.is_empty() {
            return Err(ConfigError::key(
                &format!("{key}.appid"),
                "must not be empty",
            ));
        }
        if apps.iter().any(|a| a.appid == appid) {
            return Err(ConfigError::key(
                &format!("{key}.appid"),
                format!("{appid} is configured twice"),
            ));
        }
        let secret = inline_or_file(&format!("{key}.secret"), app.secret, app.secret_file, base)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConfigError::key(&format!("{key}.secret"), "required (or secret_file)")
            })?;
        apps.push(AppConfig {
            appid,
            secret: Secret::new(secret),
        });
    }
    Ok(apps)
}

fn session(raw: RawSession, base: &Path) -> Result<SessionConfig, ConfigError> {
    let store = match raw.store.as_str() {
        "memory" => StoreKind::Memory,
        "redis" => StoreKind::Redis,
        other => {
            return Err(ConfigError::key(
                "session.store",
                format!("{other:?} is not \"memory\" or \"redis\""),
            ));
        }
    };
    Ok(SessionConfig {
        store,
        ttl: parse_duration("session.ttl", &raw.ttl)?,
        data_dir: resolve(base, &raw.data_dir),
        max_per_user: raw.max_per_user as usize,
    })
}

fn redis(raw: RawRedis, base: &Path) -> Result<RedisConfig, ConfigError> {
    let url = inline_or_file("redis.url", raw.url, raw.url_file, base)?
        .ok_or_else(|| ConfigError::key("redis.url", "required (or url_file)"))?;
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::key(
            "redis.url",
            "must start with redis:// or rediss://",
        ));
    }
    let key = inline_or_file(
        "redis.encryption_key",
        raw.encryption_key,
        raw.encryption_key_file,
        base,
    )?
    .ok_or_else(|| ConfigError::key("redis.encryption_key", "required (or encryption_key_file)"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .map_err(|_| {
            ConfigError::key(
                "redis.encryption_key",
                "must be base64 (e.g. `openssl rand -base64 32`)",
            )
        })?;
    if decoded.len() != 32 {
        return Err(ConfigError::key(
            "redis.encryption_key",
            format!("must decode to 32 bytes, not {}", decoded.len()),
        ));
    }
    Ok(RedisConfig {
        url: Secret::new(url),
        key_prefix: raw.key_prefix,
        encryption_key: Secret::new(key),
        cluster: raw.cluster,
        nodes: raw.nodes.into_iter().map(Secret::new).collect(),
    })
}

fn accounts(raw: RawAccounts, base: &Path) -> Result<AccountsConfig, ConfigError> {
    let unbound = match raw.unbound.as_str() {
        "allow" => Unbound::Allow,
        "reject" => Unbound::Reject,
        other => {
            return Err(ConfigError::key(
                "accounts.unbound",
                format!("{other:?} is not \"allow\" or \"reject\""),
            ));
        }
    };
    Ok(AccountsConfig {
        file: raw.file.map(|f| resolve(base, &f)),
        unbound,
    })
}

fn routes(raw: Vec<RawRoute>, base: &Path) -> Result<Vec<RouteConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let key = format!("routes[{i}]");
            if !r.prefix.starts_with('/') {
                return Err(ConfigError::key(
                    &format!("{key}.prefix"),
                    "must start with /",
                ));
            }
            let auth = match r.auth.as_str() {
                "required" => AuthMode::Required,
                "optional" => AuthMode::Optional,
                "public" => AuthMode::Public,
                other => {
                    return Err(ConfigError::key(
                        &format!("{key}.auth"),
                        format!("{other:?} is not \"required\", \"optional\" or \"public\""),
                    ));
                }
            };
            let upstream = http_uri(&format!("{key}.upstream"), &r.upstream)?;
            let ca_file = r.ca_file.map(|f| resolve(base, &f));
            let tls = super::upstream_tls::for_route(&key, &upstream, ca_file.as_deref())?;
            let audience = match r.audience {
                Some(a) if a.is_empty() => {
                    return Err(ConfigError::key(
                        &format!("{key}.audience"),
                        "must not be empty (leave it out to use the prefix)",
                    ));
                }
                Some(a) => a,
                None => r.prefix.clone(),
            };
            Ok(RouteConfig {
                audience: audience.into(),
                prefix: r.prefix,
                upstream,
                auth,
                timeout: parse_duration(&format!("{key}.timeout"), &r.timeout)?,
                ca_file,
                tls,
            })
        })
        .collect()
}

fn header_name(key: &str, value: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(value.trim().as_bytes())
        .map_err(|_| ConfigError::key(key, format!("{value:?} is not a valid header name")))
}

fn identity_headers(raw: RawIdentityHeaders) -> Result<IdentityHeaders, ConfigError> {
    Ok(IdentityHeaders {
        openid: header_name("identity_headers.openid", &raw.openid)?,
        appid: header_name("identity_headers.appid", &raw.appid)?,
        unionid: header_name("identity_headers.unionid", &raw.unionid)?,
        account_id: header_name("identity_headers.account_id", &raw.account_id)?,
        phone: header_name("identity_headers.phone", &raw.phone)?,
        risk_rank: header_name("identity_headers.risk_rank", &raw.risk_rank)?,
    })
}

fn log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::key(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ));
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
        return Err(ConfigError::key(
            "log.level",
            format!("{:?} is not a log level or filter", raw.level),
        ));
    }
    Ok(LogConfig {
        format,
        level: raw.level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("/etc/wxgate"))
    }

    const APP: &str = "[[apps]]\nappid = \"wx1\"\nsecret = \"s\"\n";

    #[test]
    fn defaults_are_the_contracts() {
        let c = load(APP).map_err(|e| e.to_string());
        let c = c.as_ref().map_err(String::as_str);
        let c = match c {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
        assert_eq!(c.server.max_body_bytes, 1_048_576);
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.drain_timeout, Duration::from_secs(30));
        assert_eq!(c.session.ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.session.data_dir, Path::new("/etc/wxgate/./data"));
        assert_eq!(c.rate_limit.login_per_minute, 30);
        assert_eq!(c.server.auth_prefix, "/wx");
        assert_eq!(c.server.body_timeout, Duration::from_secs(30));
        assert_eq!(c.admin.max_connections, 256);
        assert_eq!(c.admin.allow.len(), 2);
        assert!(c.admin.token.is_none());
        assert_eq!(c.identity_headers.openid.as_str(), "x-wx-openid");
        assert_eq!(c.identity_headers.risk_rank.as_str(), "x-wx-risk-rank");
        assert!(!c.relay.enabled && !c.risk.enabled);
        assert_eq!(c.relay.paths.len(), DEFAULT_RELAY_PATHS.len());
        assert_eq!(
            (c.risk.scene, c.risk.block_at, c.risk.fail_open),
            (0, 4, true)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = load(&format!("{APP}[server]\nlisen = \"x\"\n"))
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().unwrap_or("").contains("lisen"), "{e:?}");
        let e = load(&format!("{APP}[session]\nttl = \"forever\"\n"))
            .err()
            .map(|e| e.to_string());
        assert!(e.as_deref().unwrap_or("").contains("session.ttl"), "{e:?}");
        let e = load(&format!(
            "{APP}[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"
        ))
        .err()
        .map(|e| e.to_string());
        assert!(
            e.as_deref().unwrap_or("").contains("trusted_proxies[0]"),
            "{e:?}"
        );
    }
}
