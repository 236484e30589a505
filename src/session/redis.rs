//! Sessions in Redis, shared by every replica, with a one-second local cache.
//!
//! `session:{sha256(token)}` holds the session sealed with AES-256-GCM (see
//! `redis::seal`), expiring with the session. A local moka cache keeps hot sessions for at
//! most [`LOCAL_TTL`], so a logout on one replica is seen by the others within a second;
//! the replica that logs out forgets at once. While Redis is down, sessions still in the
//! local cache keep working; every other lookup is `store_unavailable` (503), never 401.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use moka::future::Cache;
use serde::{Deserialize, Serialize};

use super::{Session, SessionStore, TokenHash};
use crate::error::GatewayError;
use crate::redis::RedisBackend;
use crate::secret::Secret;

/// How long a replica may answer from its local copy of a session: under the contract's
/// 1 s for a logout to reach every replica, with room for timer slack.
pub const LOCAL_TTL: Duration = Duration::from_millis(900);
const LOCAL_CAPACITY: u64 = 100_000;

/// What is sealed into Redis.
#[derive(Serialize, Deserialize)]
struct Stored {
    appid: String,
    openid: String,
    unionid: Option<String>,
    session_key: String,
    phone: Option<String>,
    expires_at_ms: u64,
}

/// Sessions in the shared store.
pub struct RedisStore {
    backend: Arc<RedisBackend>,
    local: Cache<TokenHash, Arc<Session>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RedisStore {
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        let local = Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            .time_to_live(LOCAL_TTL)
            .build();
        Self { backend, local }
    }

    fn key(&self, hash: &TokenHash) -> String {
        self.backend.key("session", &hash.to_hex())
    }

    fn decode(&self, key: &str, blob: &[u8]) -> Option<Session> {
        let plain = self.backend.sealer.open(key.as_bytes(), blob)?;
        let s: Stored = serde_json::from_slice(&plain).ok()?;
        Some(Session {
            appid: Arc::from(s.appid.as_str()),
            openid: s.openid,
            unionid: s.unionid,
            session_key: Secret::new(s.session_key),
            phone: s.phone,
            expires_at: UNIX_EPOCH + Duration::from_millis(s.expires_at_ms),
        })
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: TokenHash, session: Arc<Session>) -> Result<(), GatewayError> {
        let left = session
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left.is_zero() {
            return Ok(());
        }
        let stored = Stored {
            appid: session.appid.to_string(),
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            session_key: session.session_key.expose().to_string(),
            phone: session.phone.clone(),
            expires_at_ms: unix_ms(session.expires_at),
        };
        let name = self.key(&key);
        let plain = serde_json::to_vec(&stored)
            .map_err(|_| GatewayError::Internal("session encoding".into()))?;
        let blob = self.backend.sealer.seal(name.as_bytes(), &plain)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&name)
            .arg(blob)
            .arg("PX")
            .arg(left.as_millis().max(1) as u64);
        self.backend.run::<()>("session_put", &cmd).await?;
        self.local.insert(key, session).await;
        Ok(())
    }

    async fn get(&self, key: &TokenHash) -> Result<Option<Arc<Session>>, GatewayError> {
        let now = SystemTime::now();
        if let Some(s) = self.local.get(key).await {
            return Ok(Some(s).filter(|s| !s.is_expired(now)));
        }
        let name = self.key(key);
        let blob: Option<Vec<u8>> = self
            .backend
            .run("session_get", redis::cmd("GET").arg(&name))
            .await?;
        let Some(session) = blob
            .and_then(|b| self.decode(&name, &b))
            .filter(|s| !s.is_expired(now))
        else {
            return Ok(None);
        };
        let session = Arc::new(session);
        self.local.insert(*key, session.clone()).await;
        Ok(Some(session))
    }

    async fn remove(&self, key: &TokenHash) -> Result<(), GatewayError> {
        self.local.invalidate(key).await;
        self.backend
            .run::<i64>("session_remove", redis::cmd("DEL").arg(self.key(key)))
            .await?;
        self.local.invalidate(key).await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), GatewayError> {
        self.backend.ping().await
    }

    async fn live_sessions(&self) -> Option<u64> {
        None
    }
}
