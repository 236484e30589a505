//! access_tokens shared by all replicas through Redis.
//!
//! `token:{appid}` is a hash of the token's keyed fingerprint and its sealed value, expiring
//! with the token; `token-lock:{appid}` is the refresh lock (`SET NX PX`, released only by
//! its holder). Every command here is safe to send twice, as the backend does after a
//! broken connection: taking the lock is a script that also answers "yours" to its holder,
//! and compare-then-expire runs as one script, so a hundred replicas reporting the same
//! failed token delete it once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::RedisBackend;
use crate::clock::{millis, now_unix_ms};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::wechat::token::{AccessToken, SharedTokens};

/// How long a refresh lock lives if its holder dies.
const LOCK_TTL: Duration = Duration::from_secs(15);

const SAVE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'blob', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

const EXPIRE_IF: &str = r"
if redis.call('HGET', KEYS[1], 'fp') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Idempotent, so a retry after a lost reply still knows the lock is ours.
const LOCK: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

#[derive(Serialize, Deserialize)]
struct Stored {
    token: String,
    expires_at_ms: u64,
}

/// The Redis side of [`SharedTokens`].
pub struct RedisTokens {
    backend: Arc<RedisBackend>,
    save: Script,
    expire_if: Script,
    lock: Script,
    unlock: Script,
}

impl RedisTokens {
    pub fn new(backend: Arc<RedisBackend>) -> Self {
        Self {
            backend,
            save: Script::new(SAVE),
            expire_if: Script::new(EXPIRE_IF),
            lock: Script::new(LOCK),
            unlock: Script::new(UNLOCK),
        }
    }

    fn fingerprint(&self, token: &str) -> String {
        self.backend.sealer.name(&["access_token", token])
    }
}

#[async_trait]
impl SharedTokens for RedisTokens {
    async fn load(&self, appid: &str) -> Result<Option<AccessToken>, GatewayError> {
        let key = self.backend.key("token", appid);
        let blob: Option<Vec<u8>> = self
            .backend
            .run("token_load", redis::cmd("HGET").arg(&key).arg("blob"))
            .await?;
        let Some(stored) = blob
            .and_then(|b| self.backend.sealer.open(key.as_bytes(), &b))
            .and_then(|plain| serde_json::from_slice::<Stored>(&plain).ok())
        else {
            return Ok(None);
        };
        let left = stored.expires_at_ms.saturating_sub(now_unix_ms());
        Ok(Some(AccessToken::expiring_in(
            Secret::new(stored.token),
            Duration::from_millis(left),
        )))
    }

    async fn save(&self, appid: &str, token: &AccessToken) -> Result<(), GatewayError> {
        let left = token.expires_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let key = self.backend.key("token", appid);
        let stored = Stored {
            token: token.token.expose().to_string(),
            expires_at_ms: now_unix_ms().saturating_add(millis(left)),
        };
        let plain = serde_json::to_vec(&stored)
            .map_err(|_| GatewayError::Internal("token encoding".into()))?;
        let blob = self.backend.sealer.seal(key.as_bytes(), &plain)?;
        let fp = self.fingerprint(token.token.expose());
        let ttl = left.as_millis().to_string();
        self.backend
            .eval::<i64>(
                "token_save",
                &self.save,
                &key,
                &[fp.as_bytes(), &blob, ttl.as_bytes()],
            )
            .await?;
        Ok(())
    }

    async fn expire_if(&self, appid: &str, failed: &str) -> Result<bool, GatewayError> {
        let key = self.backend.key("token", appid);
        let fp = self.fingerprint(failed);
        let deleted: i64 = self
            .backend
            .eval("token_expire", &self.expire_if, &key, &[fp.as_bytes()])
            .await?;
        Ok(deleted > 0)
    }

    async fn try_lock(&self, appid: &str) -> Result<Option<String>, GatewayError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| GatewayError::Internal("OS RNG failed".into()))?;
        let id = hex::encode(id);
        let key = self.backend.key("token-lock", appid);
        let ttl = LOCK_TTL.as_millis().to_string();
        let taken: i64 = self
            .backend
            .eval(
                "token_lock",
                &self.lock,
                &key,
                &[id.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        Ok((taken == 1).then_some(id))
    }

    async fn unlock(&self, appid: &str, lock: &str) -> Result<(), GatewayError> {
        let key = self.backend.key("token-lock", appid);
        self.backend
            .eval::<i64>("token_unlock", &self.unlock, &key, &[lock.as_bytes()])
            .await
            .map(drop)
    }
}
