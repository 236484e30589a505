//! The bindings file on local disk: one redb database under `[session] data_dir`.
//!
//! It owns the file's life: the directory is made 0700 and the file 0600 (phones are kept
//! in clear), looser modes left by earlier versions are tightened at open, each write is
//! one fsynced transaction, and I/O faults heal. redb refuses every operation after an
//! I/O error ("close and re-open the database"), so a failed write drops the database and
//! the next write, or a readiness probe, opens it again (reloading what is on disk). All
//! access goes through one mutex, on blocking threads; the request path never waits here.

use std::collections::HashMap;
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::bindings::Binding;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");
/// One row rewritten by readiness probes while the store is failing.
const PROBE: TableDefinition<&str, u64> = TableDefinition::new("probe");
pub(super) const FILE_NAME: &str = "bindings.redb";

/// Bindings by appid, then openid: the in-memory copy lookups read.
pub(super) type Mirror = HashMap<String, HashMap<String, Arc<Binding>>>;

/// The database file and whether it can currently be written.
pub(super) struct Disk {
    dir: PathBuf,
    /// `None` after an I/O error, until it is reopened.
    db: Mutex<Option<Database>>,
    /// Whether the last write, reopen or probe failed.
    failed: AtomicBool,
}

impl Disk {
    /// Open (or create) `data_dir/bindings.redb` and read every binding in it.
    pub(super) fn open(data_dir: &Path) -> Result<(Self, Mirror), String> {
        let (db, mirror) = open_database(data_dir)?;
        let disk = Self {
            dir: data_dir.to_path_buf(),
            db: Mutex::new(Some(db)),
            failed: AtomicBool::new(false),
        };
        Ok((disk, mirror))
    }

    /// Whether the last attempt to write failed (cheap; no I/O).
    pub(super) fn is_failing(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Commit `value` (or the removal of `key`), then `apply` the same change to the
    /// mirror while no other write can run. On an I/O error nothing is applied and the
    /// database is dropped, to be reopened by the next write or probe.
    pub(super) fn write<R>(
        &self,
        mirror: &RwLock<Mirror>,
        key: &str,
        value: Option<&[u8]>,
        apply: impl FnOnce(&mut Mirror) -> R,
    ) -> Result<R, String> {
        let mut slot = self.lock();
        let result = self
            .ensure_open(&mut slot, mirror)
            .and_then(|db| commit(db, key, value));
        self.settle(&mut slot, result)?;
        Ok(apply(
            &mut mirror.write().unwrap_or_else(PoisonError::into_inner),
        ))
    }

    /// While failing: reopen and try a small write; `Ok` once that works. Never waits for a
    /// write in progress (that one will tell).
    pub(super) fn probe(&self, mirror: &RwLock<Mirror>) -> Result<(), String> {
        if !self.is_failing() {
            return Ok(());
        }
        let mut slot = match self.db.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut slot = poisoned.into_inner();
                *slot = None;
                slot
            }
            Err(TryLockError::WouldBlock) => return Err("the bindings file is busy".into()),
        };
        let result = self.ensure_open(&mut slot, mirror).and_then(commit_probe);
        self.settle(&mut slot, result)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Database>> {
        self.db.lock().unwrap_or_else(|poisoned| {
            // a panic mid-write: start over from what is on disk
            let mut slot = poisoned.into_inner();
            *slot = None;
            slot
        })
    }

    /// The open database, reopening it (and reloading the mirror from it) if it was dropped.
    fn ensure_open<'a>(
        &self,
        slot: &'a mut Option<Database>,
        mirror: &RwLock<Mirror>,
    ) -> Result<&'a Database, String> {
        let db = match slot.take() {
            Some(db) => db,
            None => {
                let (db, loaded) = open_database(&self.dir)?;
                *mirror.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                tracing::info!(dir = %self.dir.display(), "bindings database reopened");
                db
            }
        };
        Ok(slot.insert(db))
    }

    /// Record the outcome; after a failure drop the database so that it can be reopened.
    fn settle(
        &self,
        slot: &mut Option<Database>,
        result: Result<(), String>,
    ) -> Result<(), String> {
        if result.is_err() {
            *slot = None;
        }
        self.failed.store(result.is_err(), Ordering::Release);
        result
    }
}

/// Create the directory and file with private modes, open redb on it and load it.
fn open_database(dir: &Path) -> Result<(Database, Mirror), String> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("session.data_dir {}: {e}", dir.display()))?;
    tighten(dir, 0o700);
    let path = dir.join(FILE_NAME);
    let named = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| named(&e))?;
    tighten(&path, 0o600);
    let db = Database::create(&path).map_err(|e| named(&e))?;
    let mirror = load(&db).map_err(|e| named(&e))?;
    Ok((db, mirror))
}

/// Clear every permission bit outside `keep` (group and others); log when that fails.
fn tighten(path: &Path, keep: u32) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !keep == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, Permissions::from_mode(mode & keep)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot make it private to this user");
    }
}

fn commit(db: &Database, key: &str, value: Option<&[u8]>) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
        let done = match value {
            Some(v) => table.insert(key, v).map(drop),
            None => table.remove(key).map(drop),
        };
        done.map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

fn commit_probe(db: &Database) -> Result<(), String> {
    let now = crate::clock::now_unix_secs();
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(PROBE).map_err(|e| e.to_string())?;
        table.insert("last", now).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

fn load(db: &Database) -> Result<Mirror, String> {
    let mut mirror = Mirror::new();
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = match txn.open_table(TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(mirror),
        Err(e) => return Err(e.to_string()),
    };
    for entry in table.iter().map_err(|e| e.to_string())? {
        let (k, v) = entry.map_err(|e| e.to_string())?;
        let Some((appid, openid)) = k.value().split_once('\n') else {
            continue;
        };
        match serde_json::from_slice::<Binding>(v.value()) {
            Ok(b) => {
                mirror
                    .entry(appid.to_string())
                    .or_default()
                    .insert(openid.to_string(), Arc::new(b));
            }
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable binding"),
        }
    }
    Ok(mirror)
}

#[cfg(test)]
pub(super) fn write_raw(dir: &Path, key: &str, value: &[u8]) -> Result<(), String> {
    let db = Database::create(dir.join(FILE_NAME)).map_err(|e| e.to_string())?;
    commit(&db, key, Some(value))
}
