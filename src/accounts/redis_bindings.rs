//! Bindings in Redis, shared by every replica.
//!
//! `binding:{hmac(appid, openid)}` holds the binding sealed with AES-256-GCM: a dump shows
//! neither who is bound nor their phone. Lookups are cached locally for at most one second
//! (absent ones too), so a binding made or removed on one replica is seen everywhere within
//! a second and immediately on the replica that changed it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use moka::future::Cache;

use super::bindings::{Binding, BindingStore, Lookup};
use crate::error::GatewayError;
use crate::redis::LOCAL_TTL;
use crate::redis::RedisBackend;

/// Bindings in the shared store.
pub struct RedisBindings {
    backend: Arc<RedisBackend>,
    /// Each answer with the moment it was read from Redis.
    local: Cache<String, (Option<Arc<Binding>>, Instant)>,
    /// Bumped by every change made through this replica.
    generation: AtomicU64,
}

impl RedisBindings {
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        let local = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(LOCAL_TTL)
            .build();
        Self {
            backend,
            local,
            generation: AtomicU64::new(0),
        }
    }

    fn key(&self, appid: &str, openid: &str) -> String {
        self.backend
            .key("binding", &self.backend.sealer.name(&[appid, openid]))
    }
}

#[async_trait]
impl BindingStore for RedisBindings {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError> {
        Ok(self.lookup(appid, openid).await?.binding)
    }

    /// Answered from the local copy while it is under [`LOCAL_TTL`] old, so an identity
    /// built from it is resolved again within a second of a change on another replica.
    async fn lookup(&self, appid: &str, openid: &str) -> Result<Lookup, GatewayError> {
        let key = self.key(appid, openid);
        let (binding, read_at) = match self.local.get(&key).await {
            Some(cached) => cached,
            None => {
                let read_at = Instant::now();
                let blob: Option<Vec<u8>> = self
                    .backend
                    .run("binding_get", redis::cmd("GET").arg(&key))
                    .await?;
                let binding = blob
                    .and_then(|b| self.backend.sealer.open(key.as_bytes(), &b))
                    .and_then(|plain| serde_json::from_slice::<Binding>(&plain).ok())
                    .map(Arc::new);
                self.local.insert(key, (binding.clone(), read_at)).await;
                (binding, read_at)
            }
        };
        Ok(Lookup {
            binding,
            fresh_until: Some(read_at + LOCAL_TTL),
        })
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError> {
        let key = self.key(appid, openid);
        let plain = serde_json::to_vec(&binding)
            .map_err(|_| GatewayError::Internal("binding encoding".into()))?;
        let blob = self.backend.sealer.seal(key.as_bytes(), &plain)?;
        self.backend
            .run::<()>("binding_put", redis::cmd("SET").arg(&key).arg(blob))
            .await?;
        self.local
            .insert(key, (Some(Arc::new(binding)), Instant::now()))
            .await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError> {
        let key = self.key(appid, openid);
        let removed: i64 = self
            .backend
            .run("binding_remove", redis::cmd("DEL").arg(&key))
            .await?;
        self.local.invalidate(&key).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(removed > 0)
    }
}
