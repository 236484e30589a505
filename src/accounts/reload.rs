//! Hot reload of the accounts file on change or SIGHUP.
//!
//! The watcher observes the file's directory (a Kubernetes ConfigMap update swaps a
//! symlink there rather than writing the file), waits for writes to settle, and reloads
//! only when the content changed. A file that fails to parse is logged and ignored.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::AccountResolver;

/// How long to wait after a change event for more writes before reloading.
const SETTLE: Duration = Duration::from_millis(100);

/// Start watching; the returned watcher must be kept alive.
pub fn spawn(resolver: Arc<AccountResolver>) -> Option<notify::RecommendedWatcher> {
    let Some(path) = resolver.path().cloned() else {
        // Nothing to reload, but SIGHUP must not terminate the process.
        let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
        spawn_sighup(tx);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tracing::info!("SIGHUP: no accounts file is configured; nothing to reload");
            }
        });
        return None;
    };
    let dir = path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into());
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let sighup_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(false);
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the accounts file; SIGHUP still reloads it");
            return spawn_sighup_only(resolver, sighup_tx, rx);
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the accounts directory");
    }
    spawn_sighup(sighup_tx);
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        while let Some(mut forced) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            while let Ok(f) = rx.try_recv() {
                forced |= f;
            }
            let current = std::fs::read(&path).ok();
            if current.is_some() && (forced || current != last) {
                reload_now(&resolver);
                last = current;
            }
        }
    });
    Some(watcher)
}

fn spawn_sighup_only(
    resolver: Arc<AccountResolver>,
    tx: mpsc::UnboundedSender<bool>,
    mut rx: mpsc::UnboundedReceiver<bool>,
) -> Option<notify::RecommendedWatcher> {
    spawn_sighup(tx);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            reload_now(&resolver);
        }
    });
    None
}

fn spawn_sighup(tx: mpsc::UnboundedSender<bool>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the accounts file");
            if tx.send(true).is_err() {
                return;
            }
        }
    });
}

fn reload_now(resolver: &AccountResolver) {
    match resolver.reload() {
        Ok(n) => tracing::info!(entries = n, "accounts file reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "accounts file not reloaded; keeping the previous mapping")
        }
    }
}
