//! Identity → account resolution.
//!
//! The resolver answers "which company account is this WeChat user?" in the contract's
//! order: a durable binding, then the accounts file by openid, by unionid, by verified
//! phone. The file mapping sits behind an `ArcSwap`, so a reload swaps it whole and a
//! request never waits on a lock. This module never talks to WeChat.

pub mod file;
pub mod phone;
pub mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use file::AccountsFile;

use crate::session::Session;

/// Resolves sessions to account IDs from the current mapping.
pub struct AccountResolver {
    file: ArcSwap<AccountsFile>,
    path: Option<PathBuf>,
}

impl AccountResolver {
    /// Load the accounts file (if one is configured); a start-up parse error is fatal.
    pub fn load(path: Option<PathBuf>) -> Result<Self, String> {
        let file = match &path {
            Some(p) => AccountsFile::load(p)?,
            None => AccountsFile::default(),
        };
        Ok(Self { file: ArcSwap::from_pointee(file), path })
    }

    /// A resolver over a fixed mapping (demo, tests).
    pub fn fixed(file: AccountsFile) -> Self {
        Self { file: ArcSwap::from_pointee(file), path: None }
    }

    /// The account for this session, if any.
    pub fn resolve(&self, session: &Session) -> Option<Arc<str>> {
        self.resolve_identity(&session.openid, session.unionid.as_deref(), session.phone.as_deref())
    }

    /// The account for these identities, in the contract's order.
    pub fn resolve_identity(&self, openid: &str, unionid: Option<&str>, phone: Option<&str>) -> Option<Arc<str>> {
        let file = self.file.load();
        file.openid
            .get(openid)
            .or_else(|| unionid.and_then(|u| file.unionid.get(u)))
            .or_else(|| phone.and_then(|p| file.phone.get(p)))
            .cloned()
    }

    /// Re-read the file; on failure keep the previous mapping and return the error.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.path else { return Ok(0) };
        let file = AccountsFile::load(path)?;
        let n = file.len();
        self.file.store(Arc::new(file));
        Ok(n)
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }
}
