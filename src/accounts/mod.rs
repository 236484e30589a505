//! Identity → account resolution.
//!
//! The resolver answers "which company account is this WeChat user?" in the contract's
//! order, always from the current accounts file: by openid, by unionid, then by the
//! verified phone (the session's, or the one its durable binding recorded). Bindings keep
//! the phone, never a copy of the account, so a file change moves bound users too. The
//! file mapping sits behind an `ArcSwap`, so a reload swaps it whole and a request never
//! waits on a lock. This module never talks to WeChat.

pub mod bindings;
mod disk;
pub mod file;
pub mod local_bindings;
pub mod phone;
pub mod redis_bindings;
pub mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use bindings::{Binding, BindingStore};
pub use file::AccountsFile;
pub use local_bindings::LocalBindings;

use crate::session::Session;

/// Who a session is, for the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub account: Option<Arc<str>>,
    pub phone: Option<Arc<str>>,
}

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
        Ok(Self {
            file: ArcSwap::from_pointee(file),
            path,
        })
    }

    /// A resolver over a fixed mapping (demo, tests).
    pub fn fixed(file: AccountsFile) -> Self {
        Self {
            file: ArcSwap::from_pointee(file),
            path: None,
        }
    }

    /// The account and verified phone for this session, given its binding (if any), from
    /// the current file: `[openid]` → `[unionid]` → the verified phone (the session's, else
    /// the binding's) under `[phone]`.
    pub fn resolve(&self, session: &Session, binding: Option<&Binding>) -> Resolved {
        let phone: Option<Arc<str>> = session
            .phone
            .as_deref()
            .or_else(|| binding.and_then(|b| b.phone.as_deref()))
            .map(Arc::from);
        let file = self.file.load();
        let account = file
            .openid
            .get(&session.openid)
            .or_else(|| session.unionid.as_deref().and_then(|u| file.unionid.get(u)))
            .or_else(|| phone.as_deref().and_then(|p| file.phone.get(p)))
            .cloned();
        Resolved { account, phone }
    }

    /// The account the `[phone]` section maps this E.164 number to.
    pub fn account_for_phone(&self, phone: &str) -> Option<Arc<str>> {
        self.file.load().phone.get(phone).cloned()
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
