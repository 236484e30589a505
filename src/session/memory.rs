//! The in-memory session store: token hash → session, in shards behind read-write locks.
//!
//! A lookup takes one shard's read lock for the time of a hash probe (token hashes are
//! already uniform, so the table hashes nothing again), and a session expires at its own
//! absolute `expires_at`, whatever updates it saw (a phone verification must not extend a
//! session). `update` and `remove` take the shard's write lock, so they serialize: an
//! update that comes after a removal finds nothing and stores nothing. Expired sessions
//! are never returned; they are swept out a shard at a time as logins come in, and whole
//! when the live sessions are counted. No lock here is held across an await, so nothing a
//! slow WeChat call does can hold up a lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{Session, SessionStore, TokenHash};
use crate::error::GatewayError;

/// Shards of the table: enough that the writers of logins rarely meet.
const SHARDS: usize = 64;
/// One shard is swept of expired sessions every this many stores.
const SWEEP_EVERY: usize = 256;

/// A hasher for keys that are already SHA-256 digests: their first bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        for (to, from) in first.iter_mut().zip(bytes) {
            *to = *from;
        }
        self.0 = u64::from_le_bytes(first);
    }

    /// The length prefix a slice hashes first says nothing: ignored.
    fn write_usize(&mut self, _: usize) {}
}

type Shard = HashMap<TokenHash, Arc<Session>, BuildHasherDefault<DigestHasher>>;

/// Sessions held in this process only.
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    /// Counts stores, to pick the next shard to sweep.
    stores: AtomicUsize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            stores: AtomicUsize::new(0),
        }
    }

    fn shard_of(&self, key: &TokenHash) -> &RwLock<Shard> {
        &self.shards[usize::from(key.0[31]) % SHARDS]
    }

    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        shard.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        shard.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remove the expired sessions of one shard; every [`SWEEP_EVERY`] stores the next
    /// shard in turn.
    fn sweep_some(&self) {
        let n = self.stores.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) {
            let shard = &self.shards[(n / SWEEP_EVERY) % SHARDS];
            let now = SystemTime::now();
            Self::write(shard).retain(|_, s| !s.is_expired(now));
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
        Self::write(self.shard_of(&key)).insert(key, session);
        self.sweep_some();
        Ok(())
    }

    async fn get(&self, key: &TokenHash) -> Result<Option<Arc<Session>>, GatewayError> {
        let found = Self::read(self.shard_of(key)).get(key).cloned();
        Ok(found.filter(|s| !s.is_expired(SystemTime::now())))
    }

    async fn update(&self, key: TokenHash, session: Arc<Session>) -> Result<bool, GatewayError> {
        let mut shard = Self::write(self.shard_of(&key));
        match shard.get_mut(&key) {
            Some(current) if !current.is_expired(SystemTime::now()) => {
                *current = session;
                Ok(true)
            }
            Some(_) | None => Ok(false),
        }
    }

    async fn remove(&self, key: &TokenHash) -> Result<(), GatewayError> {
        Self::write(self.shard_of(key)).remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn live_sessions(&self) -> Option<u64> {
        let now = SystemTime::now();
        let mut live = 0u64;
        for shard in &self.shards {
            let mut shard = Self::write(shard);
            shard.retain(|_, s| !s.is_expired(now));
            live += shard.len() as u64;
        }
        Some(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::Duration;

    fn session(ttl: Duration) -> Arc<Session> {
        Arc::new(Session {
            appid: "wx1".into(),
            openid: "o1".into(),
            unionid: None,
            session_key: Secret::new("k"),
            phone: None,
            risk_rank: None,
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
        assert_eq!(store.live_sessions().await, Some(1));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(matches!(store.get(&short).await, Ok(None)));
        assert_eq!(store.live_sessions().await, Some(0));
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

    #[tokio::test]
    async fn expired_sessions_are_swept_as_logins_come_in() {
        let store = MemoryStore::new();
        let stored = 2 * SHARDS * SWEEP_EVERY;
        for i in 0..stored {
            let key = TokenHash::of(&format!("wxg_{i}"));
            assert!(store.put(key, session(Duration::ZERO)).await.is_ok());
        }
        let held: usize = store
            .shards
            .iter()
            .map(|s| MemoryStore::read(s).len())
            .sum();
        assert!(
            held < stored / 2,
            "{held} of {stored} expired sessions held"
        );
    }
}
