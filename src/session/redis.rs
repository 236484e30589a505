//! Sessions in Redis, shared by every replica, with a one-second local cache.
//!
//! `session:{sha256(token)}` holds the session sealed with AES-256-GCM (see
//! `redis::seal`), expiring with the session. A local moka cache keeps hot sessions for at
//! most [`LOCAL_TTL`], so a logout on one replica is seen by the others within a second;
//! the replica that logs out forgets at once. An update is `SET ... XX`, so it never
//! recreates a session that a logout deleted, and a logout leaves a short-lived local
//! tombstone so that no lookup or update still in flight re-fills the local cache with it.
//! While Redis is down, sessions still in the local cache keep working; every other lookup
//! is `store_unavailable` (503), never 401.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use moka::future::Cache;
use moka::ops::compute::Op;
use serde::{Deserialize, Serialize};

use super::{Session, SessionStore, TokenHash, UserSession};
use crate::clock::{millis, unix_ms};
use crate::error::GatewayError;
use crate::redis::{LOCAL_TTL, RedisBackend};
use crate::secret::Secret;

const LOCAL_CAPACITY: u64 = 100_000;
/// How long this replica remembers a logout: longer than any command still in flight
/// (each is bounded by one second) could take to come back.
const TOMBSTONE_TTL: Duration = Duration::from_secs(10);

/// What is sealed into Redis.
#[derive(Serialize, Deserialize)]
struct Stored {
    appid: String,
    openid: Box<str>,
    unionid: Option<Box<str>>,
    session_key: String,
    phone: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    risk_rank: Option<u8>,
    expires_at_ms: u64,
}

/// Sessions in the shared store.
pub struct RedisStore {
    backend: Arc<RedisBackend>,
    local: Cache<TokenHash, Arc<Session>>,
    /// Tokens removed on this replica recently; never cached locally again.
    removed: Cache<TokenHash, ()>,
}

impl RedisStore {
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        let local = Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            .time_to_live(LOCAL_TTL)
            .build();
        let removed = Cache::builder()
            .max_capacity(LOCAL_CAPACITY)
            .time_to_live(TOMBSTONE_TTL)
            .build();
        Self {
            backend,
            local,
            removed,
        }
    }

    fn key(&self, hash: &TokenHash) -> String {
        self.backend.key("session", &hash.to_hex())
    }

    /// The user's index: a sorted set of token hashes scored by creation time (ms), under
    /// a keyed name (no openid in clear), living as long as the user's newest session.
    fn user_key(&self, appid: &str, openid: &str) -> String {
        self.backend
            .key("user", &self.backend.sealer.name(&[appid, openid]))
    }

    /// Add a new session to its user's index.
    async fn index(&self, hash: &TokenHash, session: &Session) -> Result<(), GatewayError> {
        let user = self.user_key(&session.appid, &session.openid);
        let left = session
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let created = unix_ms(SystemTime::now());
        let add = redis::cmd("ZADD")
            .arg(&user)
            .arg(created)
            .arg(hash.to_hex())
            .clone();
        self.backend.run::<i64>("session_index", &add).await?;
        // the newest session lives longest: the index lives as long as it
        let ttl = redis::cmd("PEXPIRE")
            .arg(&user)
            .arg(millis(left).max(1))
            .clone();
        self.backend.run::<i64>("session_index", &ttl).await?;
        Ok(())
    }

    /// The user's live sessions, oldest first, with their hashes; entries of sessions
    /// that ended are dropped from the index on the way.
    async fn live_of(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Vec<(TokenHash, UserSession)>, GatewayError> {
        let user = self.user_key(appid, openid);
        let members: Vec<(String, u64)> = self
            .backend
            .run(
                "session_index",
                redis::cmd("ZRANGE")
                    .arg(&user)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut live = Vec::with_capacity(members.len());
        for (member, created_ms) in members {
            // a member this replica ended lately counts as gone, whatever Redis says yet
            let hash = TokenHash::from_hex(&member).filter(|h| !self.removed.contains_key(h));
            let left: i64 = match &hash {
                Some(h) => {
                    self.backend
                        .run("session_index", redis::cmd("PTTL").arg(self.key(h)))
                        .await?
                }
                None => -2,
            };
            match hash.filter(|_| left > 0) {
                Some(h) => live.push((
                    h,
                    UserSession {
                        created_at: UNIX_EPOCH + Duration::from_millis(created_ms),
                        expires_at: SystemTime::now() + Duration::from_millis(left.unsigned_abs()),
                    },
                )),
                None => {
                    self.backend
                        .run::<i64>("session_index", redis::cmd("ZREM").arg(&user).arg(&member))
                        .await?;
                }
            }
        }
        Ok(live)
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
            risk_rank: s.risk_rank,
            expires_at: UNIX_EPOCH + Duration::from_millis(s.expires_at_ms),
            identity: Default::default(),
        })
    }

    /// `SET` the sealed session with its remaining lifetime; with `existing_only`, `XX`:
    /// nothing is written (and `false` returned) when the key is gone.
    async fn write(
        &self,
        key: &TokenHash,
        session: &Session,
        existing_only: bool,
    ) -> Result<bool, GatewayError> {
        let left = session
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        if left.is_zero() {
            return Ok(false);
        }
        let stored = Stored {
            appid: session.appid.to_string(),
            openid: session.openid.clone(),
            unionid: session.unionid.clone(),
            session_key: session.session_key.expose().to_string(),
            phone: session.phone.clone(),
            risk_rank: session.risk_rank,
            expires_at_ms: unix_ms(session.expires_at),
        };
        let name = self.key(key);
        let plain = serde_json::to_vec(&stored)
            .map_err(|_| GatewayError::Internal("session encoding".into()))?;
        let blob = self.backend.sealer.seal(name.as_bytes(), &plain)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&name).arg(blob);
        if existing_only {
            cmd.arg("XX");
        }
        cmd.arg("PX").arg(millis(left).max(1));
        let op = if existing_only {
            "session_update"
        } else {
            "session_put"
        };
        let reply: Option<String> = self.backend.run(op, &cmd).await?;
        Ok(reply.is_some())
    }

    /// Keep a copy for [`LOCAL_TTL`], unless this replica removed the token meanwhile
    /// (checked inside the per-key compute that `forget_locally` also runs in).
    async fn cache_locally(&self, key: TokenHash, session: Arc<Session>) {
        let removed = &self.removed;
        self.local
            .entry(key)
            .and_compute_with(|_| async move {
                if removed.contains_key(&key) {
                    Op::Remove
                } else {
                    Op::Put(session)
                }
            })
            .await;
    }

    async fn forget_locally(&self, key: TokenHash) {
        self.local
            .entry(key)
            .and_compute_with(|_| std::future::ready(Op::Remove))
            .await;
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: TokenHash, session: Arc<Session>) -> Result<(), GatewayError> {
        if self.write(&key, &session, false).await? {
            self.index(&key, &session).await?;
            self.cache_locally(key, session).await;
        }
        Ok(())
    }

    async fn update(&self, key: TokenHash, session: Arc<Session>) -> Result<bool, GatewayError> {
        let stored = self.write(&key, &session, true).await?;
        if stored {
            self.cache_locally(key, session).await;
        }
        Ok(stored)
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
        self.cache_locally(*key, session.clone()).await;
        Ok(Some(session))
    }

    async fn remove(&self, key: &TokenHash) -> Result<(), GatewayError> {
        self.removed.insert(*key, ()).await;
        self.forget_locally(*key).await;
        self.backend
            .run::<i64>("session_remove", redis::cmd("DEL").arg(self.key(key)))
            .await?;
        self.forget_locally(*key).await;
        Ok(())
    }

    async fn ping(&self) -> Result<(), GatewayError> {
        self.backend.ping().await
    }

    async fn live_sessions(&self) -> Option<u64> {
        None
    }

    async fn user_sessions(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Vec<UserSession>, GatewayError> {
        let live = self.live_of(appid, openid).await?;
        Ok(live.into_iter().map(|(_, s)| s).collect())
    }

    /// Each ended session goes as `remove` ends one: gone here at once (and never cached
    /// again), on other replicas when their local copy ages out (under a second).
    async fn end_user_sessions(
        &self,
        appid: &str,
        openid: &str,
        keep: usize,
    ) -> Result<usize, GatewayError> {
        let live = self.live_of(appid, openid).await?;
        let ending = live.len().saturating_sub(keep);
        let user = self.user_key(appid, openid);
        for (hash, _) in &live[..ending] {
            self.remove(hash).await?;
            self.backend
                .run::<i64>(
                    "session_index",
                    redis::cmd("ZREM").arg(&user).arg(hash.to_hex()),
                )
                .await?;
        }
        Ok(ending)
    }
}
