//! `[relay]` and `[risk]`: the WeChat services the gateway runs for legacy code (CONTRACT
//! section 10), as serde reads them and as validated values.
//!
//! Relay paths must be in the normal form of section 5 (relative, no empty, `.` or `..`
//! segment, only unreserved characters and `/`), because a caller's path is compared with
//! them byte for byte; `block_at` is a risk rank, 0..=4.

use std::sync::Arc;

use serde::Deserialize;

use super::ConfigError;

/// The paths the relay forwards by default: QR codes, subscribe messages, links and
/// content checks; nothing that changes the app's settings.
pub const DEFAULT_RELAY_PATHS: [&str; 8] = [
    "wxa/getwxacodeunlimit",
    "wxa/getwxacode",
    "cgi-bin/wxaapp/createwxaqrcode",
    "cgi-bin/message/subscribe/send",
    "wxa/generate_urllink",
    "wxa/generatescheme",
    "wxa/msg_sec_check",
    "wxa/media_check_async",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRelay {
    pub enabled: bool,
    pub paths: Vec<String>,
}

impl Default for RawRelay {
    fn default() -> Self {
        Self {
            enabled: false,
            paths: DEFAULT_RELAY_PATHS.map(String::from).to_vec(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRisk {
    pub enabled: bool,
    pub scene: u32,
    pub block_at: i64,
    pub fail_open: bool,
}

impl Default for RawRisk {
    fn default() -> Self {
        Self {
            enabled: false,
            scene: 0,
            block_at: 4,
            fail_open: true,
        }
    }
}

/// The open-API relay on the admin listener.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub enabled: bool,
    /// The allow-list, each path relative to `[wechat] api_base` (`wxa/getwxacodeunlimit`).
    pub paths: Vec<Arc<str>>,
}

impl RelayConfig {
    /// The allow-listed path equal to `path`, if any (the metrics label shares it).
    pub fn allowed(&self, path: &str) -> Option<&Arc<str>> {
        self.paths.iter().find(|p| &***p == path)
    }
}

/// The login risk check.
#[derive(Debug, Clone, Copy)]
pub struct RiskConfig {
    pub enabled: bool,
    pub scene: u32,
    /// A rank at or above this blocks the login (0..=4).
    pub block_at: u8,
    /// A failed risk call lets the login go on (without a rank) instead of 503.
    pub fail_open: bool,
}

pub fn relay(raw: RawRelay) -> Result<RelayConfig, ConfigError> {
    let paths = raw
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            relay_path(p)
                .map(Arc::from)
                .ok_or_else(|| {
                    ConfigError::key(
                        &format!("relay.paths[{i}]"),
                        format!("{p:?} is not a path like \"wxa/getwxacodeunlimit\" (relative, no empty, `.` or `..` segment, letters, digits and `-._~/` only)"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(RelayConfig {
        enabled: raw.enabled,
        paths,
    })
}

/// `path` when it is a relative path in normal form.
fn relay_path(path: &str) -> Option<&str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    let segment_ok = |s: &str| !s.is_empty() && s != "." && s != ".." && s.bytes().all(unreserved);
    path.split('/').all(segment_ok).then_some(path)
}

pub fn risk(raw: RawRisk) -> Result<RiskConfig, ConfigError> {
    let block_at = u8::try_from(raw.block_at)
        .ok()
        .filter(|b| *b <= 4)
        .ok_or_else(|| {
            ConfigError::key(
                "risk.block_at",
                format!("{} is not a risk rank (0..=4)", raw.block_at),
            )
        })?;
    Ok(RiskConfig {
        enabled: raw.enabled,
        scene: raw.scene,
        block_at,
        fail_open: raw.fail_open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_paths_must_be_in_normal_form() {
        for ok in DEFAULT_RELAY_PATHS {
            assert_eq!(relay_path(ok), Some(ok));
        }
        for bad in [
            "", "/wxa/x", "wxa/x/", "wxa//x", "wxa/../x", "./x", "wxa/%2e", "a?b", "a b",
        ] {
            assert_eq!(relay_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn block_at_is_a_rank() {
        let raw = |block_at| RawRisk {
            block_at,
            ..RawRisk::default()
        };
        assert!(risk(raw(0)).is_ok() && risk(raw(4)).is_ok());
        let on = RawRisk {
            enabled: true,
            ..RawRisk::default()
        };
        assert!(risk(on).is_ok_and(|r| r.enabled && r.block_at == 4 && r.fail_open));
        for bad in [-1, 5, 300] {
            let e = risk(raw(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("risk.block_at"), "{bad}: {e}");
        }
    }
}
