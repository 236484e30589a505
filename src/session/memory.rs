//! The in-memory session store: token hash → session, in shards behind read-write locks.
//!
//! A lookup takes one shard's read lock for the time of a hash probe (token hashes are
//! already uniform, so the table hashes nothing again), and a session expires at its own
//! absolute `expires_at`, whatever updates it saw (a phone verification must not extend a
//! session). `update` and `remove` take the shard's write lock, so they serialize: an
//! update that comes after a removal finds nothing and stores nothing. Expired sessions
//! are never returned; they are swept out a shard at a time as logins come in, and whole
//! when the live sessions are counted. No lock here is held across an await, so nothing a
//! slow WeChat call does can hold up a lookup. A [`UserIndex`] knows each user's sessions
//! in creation order, for `max_per_user` and the admin's per-user list and revocation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::users::UserIndex;
use super::{Session, SessionStore, TokenHash, UserSession};
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
    users: UserIndex,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            stores: AtomicUsize::new(0),
            users: UserIndex::default(),
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
            self.sweep(&self.shards[(n / SWEEP_EVERY) % SHARDS]);
        }
    }

    /// Drop a shard's expired sessions (and their index entries); how many are left.
    fn sweep(&self, shard: &RwLock<Shard>) -> usize {
        let now = SystemTime::now();
        let mut gone = Vec::new();
        let left = {
            let mut shard = Self::write(shard);
            shard.retain(|k, s| {
                let live = !s.is_expired(now);
                if !live {
                    gone.push((*k, s.clone()));
                }
                live
            });
            shard.len()
        };
        self.users.forget(gone.iter().map(|(k, s)| (*k, &**s)));
        left
    }

    /// Remove one session, and its index entry.
    fn remove_now(&self, key: &TokenHash) {
        let removed = Self::write(self.shard_of(key)).remove(key);
        if let Some(session) = removed {
            self.users.forget([(*key, &*session)]);
        }
    }

    /// The user's live sessions with their keys, oldest first.
    fn live_of(&self, appid: &str, openid: &str) -> Vec<(TokenHash, UserSession)> {
        let now = SystemTime::now();
        self.users
            .entries(appid, openid)
            .into_iter()
            .filter_map(|e| {
                let session = Self::read(self.shard_of(&e.key)).get(&e.key).cloned()?;
                let times = UserSession {
                    created_at: e.created_at,
                    expires_at: session.expires_at,
                };
                (!session.is_expired(now)).then_some((e.key, times))
            })
            .collect()
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
        let replaced = Self::write(self.shard_of(&key)).insert(key, session.clone());
        if let Some(old) = replaced {
            self.users.forget([(key, &*old)]);
        }
        self.users.add(key, &session, SystemTime::now());
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
        self.remove_now(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn live_sessions(&self) -> Option<u64> {
        let live = self.shards.iter().map(|s| self.sweep(s) as u64).sum();
        Some(live)
    }

    async fn user_sessions(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Vec<UserSession>, GatewayError> {
        Ok(self
            .live_of(appid, openid)
            .into_iter()
            .map(|(_, s)| s)
            .collect())
    }

    async fn end_user_sessions(
        &self,
        appid: &str,
        openid: &str,
        keep: usize,
    ) -> Result<usize, GatewayError> {
        let live = self.live_of(appid, openid);
        let ending = live.len().saturating_sub(keep);
        for (key, _) in &live[..ending] {
            self.remove_now(key);
        }
        Ok(ending)
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
    async fn the_user_index_follows_the_store() {
        let store = MemoryStore::new();
        let keys: Vec<TokenHash> = (0..3)
            .map(|i| TokenHash::of(&format!("wxg_u{i}")))
            .collect();
        for k in &keys {
            assert!(
                store
                    .put(*k, session(Duration::from_secs(60)))
                    .await
                    .is_ok()
            );
        }
        assert_eq!(store.users.entries("wx1", "o1").len(), 3);
        assert!(store.remove(&keys[0]).await.is_ok());
        assert_eq!(store.users.entries("wx1", "o1").len(), 2);
        assert!(matches!(
            store.end_user_sessions("wx1", "o1", 1).await,
            Ok(1)
        ));
        assert!(
            matches!(store.get(&keys[1]).await, Ok(None)),
            "not the oldest ended"
        );
        assert!(matches!(store.get(&keys[2]).await, Ok(Some(_))));
        // expired sessions leave the index when swept
        let short = TokenHash::of("wxg_short");
        assert!(store.put(short, session(Duration::ZERO)).await.is_ok());
        assert_eq!(store.live_sessions().await, Some(1));
        assert_eq!(store.users.entries("wx1", "o1").len(), 1);
        assert!(matches!(
            store.end_user_sessions("wx1", "o1", 0).await,
            Ok(1)
        ));
        assert!(store.users.entries("wx1", "o1").is_empty());
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
