//! Sessions: what a login leaves behind, and where it is kept.
//!
//! [`SessionStore`] is the seam between the gateway and its storage: the in-memory
//! backend lives in [`memory`]; a shared backend implements the same trait. Stores see
//! token hashes only. This module never talks to WeChat and never decides on accounts.

pub mod memory;
pub mod redis;
pub mod token;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::GatewayError;
use crate::secret::Secret;

pub use token::{Credential, Token, TokenHash};

/// One logged-in mini-program user.
#[derive(Debug, Clone)]
pub struct Session {
    pub appid: Arc<str>,
    pub openid: String,
    pub unionid: Option<String>,
    /// WeChat's credential for this user; never leaves the gateway.
    pub session_key: Secret,
    /// A verified phone in E.164, once `/wx/phone` succeeded.
    pub phone: Option<String>,
    pub expires_at: SystemTime,
}

impl Session {
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
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
}
