//! The static accounts file: `[openid]`, `[unionid]` and `[phone]` → account ID.
//!
//! Parsing is strict (unknown sections and malformed phone keys are errors) so that a
//! broken edit is refused and the previous mapping stays in force.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::phone;

/// One parsed accounts file.
#[derive(Debug, Default)]
pub struct AccountsFile {
    pub openid: HashMap<String, Arc<str>>,
    pub unionid: HashMap<String, Arc<str>>,
    /// Keys in canonical E.164.
    pub phone: HashMap<String, Arc<str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    #[serde(default)]
    openid: HashMap<String, AccountId>,
    #[serde(default)]
    unionid: HashMap<String, AccountId>,
    #[serde(default)]
    phone: HashMap<String, AccountId>,
}

/// Account IDs may be written as strings or integers.
#[derive(Deserialize)]
#[serde(untagged)]
enum AccountId {
    Text(String),
    Number(i64),
}

impl AccountId {
    fn into_arc(self) -> Arc<str> {
        match self {
            Self::Text(s) => s.into(),
            Self::Number(n) => n.to_string().into(),
        }
    }
}

impl AccountsFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawAccounts = toml::from_str(text).map_err(|e| e.to_string())?;
        let convert = |m: HashMap<String, AccountId>| -> HashMap<String, Arc<str>> {
            m.into_iter().map(|(k, v)| (k, v.into_arc())).collect()
        };
        let mut phones = HashMap::with_capacity(raw.phone.len());
        for (key, account) in raw.phone {
            let canonical = phone::normalize(&key)
                .ok_or_else(|| format!("[phone] key {key:?} is not E.164 or a mainland number"))?;
            phones.insert(canonical, account.into_arc());
        }
        Ok(Self {
            openid: convert(raw.openid),
            unionid: convert(raw.unionid),
            phone: phones,
        })
    }

    pub fn len(&self) -> usize {
        self.openid.len() + self.unionid.len() + self.phone.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_sections() {
        let f = AccountsFile::parse(
            "[openid]\n\"o1\" = \"10001\"\n[unionid]\n\"u1\" = 10002\n[phone]\n\"13800138000\" = \"10003\"\n",
        );
        let f = f.unwrap_or_default();
        assert_eq!(f.openid.get("o1").map(|s| &**s), Some("10001"));
        assert_eq!(f.unionid.get("u1").map(|s| &**s), Some("10002"));
        assert_eq!(f.phone.get("+8613800138000").map(|s| &**s), Some("10003"));
    }

    #[test]
    fn rejects_bad_phone_keys_and_sections() {
        assert!(AccountsFile::parse("[phone]\n\"12\" = \"1\"\n").is_err());
        assert!(AccountsFile::parse("[users]\n\"a\" = \"1\"\n").is_err());
    }
}
