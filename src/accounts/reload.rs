//! Hot reload of the accounts file on change or SIGHUP.
//!
//! The triggers (the file's directory watched, writes left to settle, SIGHUP) are
//! [`crate::watch`]'s; this module only re-reads the mapping when one fires: on a change
//! of the file's content, and on every SIGHUP. A file that fails to parse is logged and
//! ignored: the previous mapping stays.

use std::sync::Arc;

use super::AccountResolver;
use crate::watch::{self, Cause};

/// Start watching; the returned watcher must be kept alive.
pub fn spawn(resolver: Arc<AccountResolver>) -> Option<notify::RecommendedWatcher> {
    let Some(path) = resolver.path().cloned() else {
        // Nothing to reload, but SIGHUP must not terminate the process.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        watch::spawn_sighup("accounts file", tx);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tracing::info!("SIGHUP: no accounts file is configured; nothing to reload");
            }
        });
        return None;
    };
    watch::spawn("accounts file", vec![path], move |cause: Cause| {
        tracing::debug!(?cause, "accounts file event; reading it");
        reload_now(&resolver);
    })
}

fn reload_now(resolver: &AccountResolver) {
    match resolver.reload() {
        Ok(n) => tracing::info!(entries = n, "accounts file reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "accounts file not reloaded; keeping the previous mapping")
        }
    }
}
