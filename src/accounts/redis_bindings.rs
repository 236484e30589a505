//! Bindings in Redis, shared by every replica.
//!
//! `binding:{hmac(appid, openid)}` holds the binding sealed with AES-256-GCM: a dump shows
//! neither who is bound nor their phone. Lookups are cached locally for at most one second
//! (absent ones too), so a binding made or removed on one replica is seen everywhere within
//! a second and immediately on the replica that changed it.

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;

use super::bindings::{Binding, BindingStore};
use crate::error::GatewayError;
use crate::redis::RedisBackend;
use crate::session::redis::LOCAL_TTL;

/// Bindings in the shared store.
pub struct RedisBindings {
    backend: Arc<RedisBackend>,
    local: Cache<String, Option<Arc<Binding>>>,
}

impl RedisBindings {
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        let local = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(LOCAL_TTL)
            .build();
        Self { backend, local }
    }

    fn key(&self, appid: &str, openid: &str) -> String {
        self.backend
            .key("binding", &self.backend.sealer.name(&[appid, openid]))
    }
}

#[async_trait]
impl BindingStore for RedisBindings {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError> {
        let key = self.key(appid, openid);
        if let Some(cached) = self.local.get(&key).await {
            return Ok(cached);
        }
        let blob: Option<Vec<u8>> = self
            .backend
            .run("binding_get", redis::cmd("GET").arg(&key))
            .await?;
        let binding = blob
            .and_then(|b| self.backend.sealer.open(key.as_bytes(), &b))
            .and_then(|plain| serde_json::from_slice::<Binding>(&plain).ok())
            .map(Arc::new);
        self.local.insert(key, binding.clone()).await;
        Ok(binding)
    }

    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError> {
        let key = self.key(appid, openid);
        let plain = serde_json::to_vec(&binding)
            .map_err(|_| GatewayError::Internal("binding encoding".into()))?;
        let blob = self.backend.sealer.seal(key.as_bytes(), &plain)?;
        self.backend
            .run::<()>("binding_put", redis::cmd("SET").arg(&key).arg(blob))
            .await?;
        self.local.insert(key, Some(Arc::new(binding))).await;
        Ok(())
    }

    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError> {
        let key = self.key(appid, openid);
        let removed: i64 = self
            .backend
            .run("binding_remove", redis::cmd("DEL").arg(&key))
            .await?;
        self.local.invalidate(&key).await;
        Ok(removed > 0)
    }
}
