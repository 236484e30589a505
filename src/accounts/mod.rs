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
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

pub use bindings::{Binding, BindingStore, Lookup};
pub use file::AccountsFile;
pub use local_bindings::LocalBindings;

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
    /// Bumped by every reload, so that identities resolved before it are resolved again.
    generation: AtomicU64,
}

/// Who is to be resolved: a session's WeChat identity and its verified phone, if any.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
    pub phone: Option<&'a str>,
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
            generation: AtomicU64::new(0),
        })
    }

    /// A resolver over a fixed mapping (demo, tests).
    pub fn fixed(file: AccountsFile) -> Self {
        Self {
            file: ArcSwap::from_pointee(file),
            path: None,
            generation: AtomicU64::new(0),
        }
    }

    /// The account and verified phone for `who`, given its binding (if any), from the
    /// current file: `[openid]` → `[unionid]` → the verified phone (the session's, else the
    /// binding's) under `[phone]`.
    pub fn resolve(&self, who: Subject<'_>, binding: Option<&Binding>) -> Resolved {
        let phone: Option<Arc<str>> = who
            .phone
            .or_else(|| binding.and_then(|b| b.phone.as_deref()))
            .map(Arc::from);
        let file = self.file.load();
        let account = file
            .openid
            .get(who.openid)
            .or_else(|| who.unionid.and_then(|u| file.unionid.get(u)))
            .or_else(|| phone.as_deref().and_then(|p| file.phone.get(p)))
            .cloned();
        Resolved { account, phone }
    }

    /// Changes with every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(n)
    }

    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }
}
