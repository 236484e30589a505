//! Hot-reload triggers: a set of files watched for changes, and SIGHUP.
//!
//! The watcher observes the files' directories (a Kubernetes ConfigMap or Secret update
//! swaps the `..data` symlink there rather than writing the files) and reacts only to
//! creation, modification, removal or renaming of a watched name (or `..data`): never to
//! opens and reads, which the reload itself causes. It waits for writes to settle and
//! calls back only when some file's content changed; every SIGHUP calls back too. What a
//! reload means, and whether it succeeds, is the caller's business: nothing here parses.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{EventKind, MetadataKind, ModifyKind};
use notify::{Event, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long to wait after a change event for more writes before looking at the files.
const SETTLE: Duration = Duration::from_millis(100);

/// The name Kubernetes' atomic writer swaps when a mounted ConfigMap or Secret changes.
const KUBERNETES_DATA: &str = "..data";

/// Why the callback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SIGHUP arrived (whether or not anything changed).
    Signal,
    /// The content of at least one watched file differs from the last look (a file that
    /// became unreadable counts as changed).
    Changed,
}

/// Whether `event` changed one of `names` (or the Kubernetes `..data` link): created,
/// written, renamed or removed. Opens, reads and access-time updates are not.
pub fn is_change_of(event: &Event, names: &[OsString]) -> bool {
    let changes = match event.kind {
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    };
    changes
        && event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == KUBERNETES_DATA || names.iter().any(|w| w == n))
        })
}

/// Watch `files` (`what` names them in log lines) and call `on_change` from a task of
/// the current runtime on SIGHUP and on content changes. The returned watcher must be
/// kept alive; `None` when the directories cannot be watched (SIGHUP still works).
pub fn spawn<F>(
    what: &'static str,
    files: Vec<PathBuf>,
    mut on_change: F,
) -> Option<notify::RecommendedWatcher>
where
    F: FnMut(Cause) + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<Cause>();
    spawn_sighup(what, tx.clone());
    let watcher = watch_dirs(what, &files, tx);
    tokio::spawn(async move {
        let mut last = contents(&files);
        while let Some(mut cause) = rx.recv().await {
            tokio::time::sleep(SETTLE).await;
            while let Ok(more) = rx.try_recv() {
                if more == Cause::Signal {
                    cause = Cause::Signal;
                }
            }
            let current = contents(&files);
            tracing::debug!(?cause, what, "reload trigger; looking at the files");
            if cause == Cause::Signal || current != last {
                last = current;
                on_change(cause);
            }
        }
    });
    watcher
}

/// A notify watcher on the directories of `files`, sending [`Cause::Changed`] on `tx`.
fn watch_dirs(
    what: &'static str,
    files: &[PathBuf],
    tx: mpsc::UnboundedSender<Cause>,
) -> Option<notify::RecommendedWatcher> {
    let names: Vec<OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(OsStr::to_owned))
        .collect();
    let dirs: BTreeSet<&Path> = files
        .iter()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        })
        .collect();
    let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(e) if is_change_of(&e, &names) => {
            let _ = tx.send(Cause::Changed);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, what, "file watcher"),
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the {what}; SIGHUP still reloads");
            return None;
        }
    };
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the {what} directory");
        }
    }
    Some(watcher)
}

/// Every file's bytes (`None` for one that cannot be read).
fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}

/// Send [`Cause::Signal`] on every SIGHUP. Installing the handler also keeps SIGHUP from
/// terminating the process.
pub fn spawn_sighup(what: &'static str, tx: mpsc::UnboundedSender<Cause>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the {what}");
            if tx.send(Cause::Signal).is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, RenameMode};

    fn event(kind: EventKind, name: &str) -> Event {
        Event::new(kind).add_path(Path::new("/etc/wxgate").join(name))
    }

    #[test]
    fn only_changes_of_the_watched_files_count() {
        let names = [OsString::from("accounts.toml"), OsString::from("key.pem")];
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        let atime = EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime));
        assert!(is_change_of(&event(modify, "accounts.toml"), &names));
        assert!(is_change_of(&event(modify, "key.pem"), &names));
        assert!(is_change_of(&event(renamed, "accounts.toml"), &names));
        assert!(is_change_of(&event(renamed, "..data"), &names));
        assert!(is_change_of(
            &event(EventKind::Create(CreateKind::File), "accounts.toml"),
            &names
        ));
        assert!(!is_change_of(&event(open, "accounts.toml"), &names));
        assert!(!is_change_of(&event(read, "key.pem"), &names));
        assert!(!is_change_of(&event(atime, "accounts.toml"), &names));
        assert!(!is_change_of(&event(modify, "gateway.toml"), &names));
    }
}
