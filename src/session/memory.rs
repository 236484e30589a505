//! The in-memory session store, a moka cache keyed by token hash.
//!
//! Each entry expires at its session's absolute `expires_at`, whatever updates it saw
//! (a phone verification must not extend a session). `update` and `remove` both run
//! through moka's per-key compute, so they serialize: an update that comes after a
//! removal finds nothing and stores nothing. Lookups take no lock that a slow WeChat call
//! could hold.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use super::{Session, SessionStore, TokenHash};
use crate::error::GatewayError;

/// Sessions held in this process only.
pub struct MemoryStore {
    cache: Cache<TokenHash, Arc<Session>>,
}

struct UntilExpiry;

fn remaining(session: &Session) -> Option<Duration> {
    Some(
        session
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

impl Expiry<TokenHash, Arc<Session>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &TokenHash,
        value: &Arc<Session>,
        _: Instant,
    ) -> Option<Duration> {
        remaining(value)
    }

    fn expire_after_update(
        &self,
        _: &TokenHash,
        value: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        remaining(value)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            cache: Cache::builder().expire_after(UntilExpiry).build(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put(&self, key: TokenHash, session: Arc<Session>) -> Result<(), GatewayError> {
        self.cache.insert(key, session).await;
        Ok(())
    }

    async fn get(&self, key: &TokenHash) -> Result<Option<Arc<Session>>, GatewayError> {
        Ok(self
            .cache
            .get(key)
            .await
            .filter(|s| !s.is_expired(SystemTime::now())))
    }

    async fn update(&self, key: TokenHash, session: Arc<Session>) -> Result<bool, GatewayError> {
        let result = self
            .cache
            .entry(key)
            .and_compute_with(|current| async move {
                match current {
                    Some(e) if !e.value().is_expired(SystemTime::now()) => Op::Put(session),
                    _ => Op::Nop,
                }
            })
            .await;
        Ok(matches!(result, CompResult::ReplacedWith(_)))
    }

    async fn remove(&self, key: &TokenHash) -> Result<(), GatewayError> {
        self.cache
            .entry(*key)
            .and_compute_with(|_| std::future::ready(Op::Remove))
            .await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn live_sessions(&self) -> Option<u64> {
        self.cache.run_pending_tasks().await;
        Some(self.cache.entry_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn session(ttl: Duration) -> Arc<Session> {
        Arc::new(Session {
            appid: "wx1".into(),
            openid: "o1".into(),
            unionid: None,
            session_key: Secret::new("k"),
            phone: None,
            expires_at: SystemTime::now() + ttl,
            identity: Default::default(),
        })
    }

    #[tokio::test]
    async fn put_get_remove_and_expiry() {
        let store = MemoryStore::new();
        let key = TokenHash::of("wxg_a");
        assert!(
            store
                .put(key, session(Duration::from_secs(60)))
                .await
                .is_ok()
        );
        assert!(matches!(store.get(&key).await, Ok(Some(_))));
        assert!(store.remove(&key).await.is_ok());
        assert!(matches!(store.get(&key).await, Ok(None)));

        let short = TokenHash::of("wxg_b");
        assert!(
            store
                .put(short, session(Duration::from_millis(20)))
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(matches!(store.get(&short).await, Ok(None)));
    }

    #[tokio::test]
    async fn update_replaces_only_a_live_session() {
        let store = MemoryStore::new();
        let key = TokenHash::of("wxg_c");
        let s = session(Duration::from_secs(60));
        assert!(matches!(store.update(key, s.clone()).await, Ok(false)));
        assert!(matches!(store.get(&key).await, Ok(None)));
        assert!(store.put(key, s.clone()).await.is_ok());
        assert!(matches!(store.update(key, s.clone()).await, Ok(true)));
        assert!(store.remove(&key).await.is_ok());
        assert!(matches!(store.update(key, s).await, Ok(false)));
        assert!(matches!(store.get(&key).await, Ok(None)));
    }
}
