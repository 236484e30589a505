//! Sessions: what a login leaves behind, and where it is kept.
//!
//! [`SessionStore`] is the seam between the gateway and its storage: the in-memory
//! backend lives in [`memory`]; a shared backend implements the same trait. Stores see
//! token hashes only. This module never talks to WeChat and never decides on accounts.

pub mod identity;
pub mod memory;
pub mod redis;
pub mod token;
mod users;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::accounts::Subject;
use crate::error::GatewayError;
use crate::secret::Secret;

pub use identity::{Identity, IdentitySlot};
pub use token::{Credential, Token, TokenHash};

/// One logged-in mini-program user.
#[derive(Debug, Clone)]
pub struct Session {
    pub appid: Arc<str>,
    pub openid: Box<str>,
    pub unionid: Option<Box<str>>,
    /// WeChat's credential for this user; never leaves the gateway.
    pub session_key: Secret,
    /// A verified phone in E.164, once `/wx/phone` succeeded.
    pub phone: Option<Box<str>>,
    /// WeChat's login risk rank (0..=4), when `[risk]` asked for one.
    pub risk_rank: Option<u8>,
    pub expires_at: SystemTime,
    /// The identity resolved from this session, once a proxied route needed it.
    pub identity: IdentitySlot,
}

impl Session {
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// The session as the accounts mapping sees it.
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            openid: &self.openid,
            unionid: self.unionid.as_deref(),
            phone: self.phone.as_deref(),
        }
    }
}

/// Where sessions live. Every method may fail with `store_unavailable`.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Store a new session under its token hash until `expires_at`.
    async fn put(&self, key: TokenHash, session: Arc<Session>) -> Result<(), GatewayError>;
    /// Replace a session that still exists; `Ok(false)` (and nothing stored) when it was
    /// removed or expired meanwhile, so a slow request cannot revive a revoked token.
    async fn update(&self, key: TokenHash, session: Arc<Session>) -> Result<bool, GatewayError>;
    /// The live session for this hash; expired ones are `None`.
    async fn get(&self, key: &TokenHash) -> Result<Option<Arc<Session>>, GatewayError>;
    /// Remove a session (logout); serialized with `update` of the same key.
    async fn remove(&self, key: &TokenHash) -> Result<(), GatewayError>;
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), GatewayError>;
    /// Live sessions, when the backend can count them cheaply.
    async fn live_sessions(&self) -> Option<u64>;
    /// The user's live sessions, oldest first.
    async fn user_sessions(
        &self,
        appid: &str,
        openid: &str,
    ) -> Result<Vec<UserSession>, GatewayError>;
    /// End the user's oldest live sessions until at most `keep` are left (`0`: all), as
    /// `remove` ends one; how many ended.
    async fn end_user_sessions(
        &self,
        appid: &str,
        openid: &str,
        keep: usize,
    ) -> Result<usize, GatewayError>;
}

/// One of a user's live sessions, as support sees it: never its token or hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSession {
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
}

/// The live session behind a `wxg_` token; an unknown, malformed (not text included) or
/// expired token is 401.
pub async fn lookup(
    store: &dyn SessionStore,
    token: &[u8],
) -> Result<(TokenHash, Arc<Session>), GatewayError> {
    let Some(token) = token::well_formed(token) else {
        return Err(GatewayError::Unauthenticated);
    };
    let hash = TokenHash::of(token);
    match store.get(&hash).await? {
        Some(session) => Ok((hash, session)),
        None => Err(GatewayError::Unauthenticated),
    }
}

#[cfg(test)]
mod tests {
    /// A live session's fixed part stays within one 128-byte allocation with its `Arc`
    /// counts (the memory store holds 100k of them in about 300 B each).
    #[test]
    fn a_session_is_small() {
        assert!(std::mem::size_of::<super::Session>() + 16 <= 128);
    }
}
