//! Hot reload of the accounts file on change or SIGHUP.
//!
//! The watcher observes the file's directory (a Kubernetes ConfigMap update swaps the
//! `..data` symlink there rather than writing the file) and reacts only to creation,
//! modification, removal or renaming of the accounts file (or `..data`): never to opens
//! and reads, which its own re-reading causes. It waits for writes to settle and reloads
//! only when the content changed. A file that fails to parse is logged and ignored.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{Event, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::AccountResolver;

/// How long to wait after a change event for more writes before reloading.
const SETTLE: Duration = Duration::from_millis(100);

/// The name Kubernetes' atomic writer swaps when a mounted ConfigMap or Secret changes.
const KUBERNETES_DATA: &str = "..data";

/// Whether `event` changed the file named `name` (or the Kubernetes `..data` link):
/// created, written, renamed or removed. Opens, reads and access-time updates are not.
fn is_change_of(event: &Event, name: &OsStr) -> bool {
    let changes = match event.kind {
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    };
    changes
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == name || n == KUBERNETES_DATA)
        })
}

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
    let name = path.file_name().unwrap_or_default().to_owned();
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let sighup_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(e) if is_change_of(&e, &name) => {
            let _ = tx.send(false);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "accounts file watcher"),
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
            tracing::debug!(forced, "accounts file event; reading it");
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, RenameMode};

    fn event(kind: EventKind, name: &str) -> Event {
        Event::new(kind).add_path(std::path::Path::new("/etc/wxgate").join(name))
    }

    #[test]
    fn only_changes_of_the_accounts_file_count() {
        let name = OsStr::new("accounts.toml");
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let atime = EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime));
        assert!(is_change_of(&event(modify, "accounts.toml"), name));
        assert!(is_change_of(&event(renamed, "accounts.toml"), name));
        assert!(is_change_of(&event(renamed, "..data"), name));
        assert!(is_change_of(
            &event(EventKind::Create(CreateKind::File), "accounts.toml"),
            name
        ));
        assert!(!is_change_of(&event(open, "accounts.toml"), name));
        assert!(!is_change_of(&event(read, "accounts.toml"), name));
        assert!(!is_change_of(&event(atime, "accounts.toml"), name));
        assert!(!is_change_of(&event(modify, "gateway.toml"), name));
    }
}
