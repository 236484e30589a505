//! Durable bindings: openid → verified phone, recorded by `/wx/phone`.
//!
//! A binding keeps the phone only; the account that phone maps to is looked up in the
//! current accounts file each time (see [`super::AccountResolver::resolve`]), so editing
//! the file moves bound users. Bindings written by earlier versions, which also carried an
//! `account_id`, still load: the field is ignored. [`BindingStore`] is the seam; the local
//! backend is [`super::LocalBindings`], the shared one [`super::redis_bindings`].

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// What the gateway remembers about one WeChat user of one app. Unknown fields (the
/// `account_id` copy of earlier versions) are ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Verified phone, E.164.
    #[serde(default)]
    pub phone: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub bound_at: u64,
}

impl Binding {
    /// A binding to this verified E.164 phone, made now.
    pub fn new(phone: String) -> Self {
        let bound_at = crate::clock::now_unix_secs();
        Self {
            phone: Some(phone),
            bound_at,
        }
    }
}

/// A binding looked up for an identity, and how long the answer may be reused.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub binding: Option<Arc<Binding>>,
    /// `None`: until [`BindingStore::generation`] changes (every change is made here).
    /// `Some(t)`: until `t`, since another replica may change it unseen.
    pub fresh_until: Option<Instant>,
}

/// Where bindings live.
#[async_trait]
pub trait BindingStore: Send + Sync + 'static {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError>;
    /// The binding, with how long the answer holds (see [`Lookup`]).
    async fn lookup(&self, appid: &str, openid: &str) -> Result<Lookup, GatewayError> {
        Ok(Lookup {
            binding: self.get(appid, openid).await?,
            fresh_until: None,
        })
    }
    /// A number that changes whenever a binding changes through this store.
    fn generation(&self) -> u64;
    /// Record a binding; `Ok` only once it is durable.
    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError>;
    /// Remove a binding; `Ok(false)` when there was none.
    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError>;
    /// Whether bindings can be written now (for `/readyz`). A store that cannot tell
    /// cheaply says yes; its failures show on the writes themselves.
    async fn ready(&self) -> Result<(), GatewayError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_of_earlier_versions_still_read() {
        let old = br#"{"phone":"+8613800138000","account_id":"10003","bound_at":1700000000}"#;
        let b: Result<Binding, _> = serde_json::from_slice(old);
        assert_eq!(
            b.ok(),
            Some(Binding {
                phone: Some("+8613800138000".into()),
                bound_at: 1_700_000_000,
            })
        );
    }
}
