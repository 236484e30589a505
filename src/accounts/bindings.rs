//! Durable bindings: openid → verified phone, recorded by `/wx/phone`.
//!
//! A binding keeps the phone only; the account that phone maps to is looked up in the
//! current accounts file each time (see [`super::AccountResolver::resolve`]), so editing
//! the file moves bound users. Bindings written by earlier versions, which also carried an
//! `account_id`, still load: the field is ignored.
//!
//! [`BindingStore`] is the seam; [`LocalBindings`] keeps them in redb under
//! `[session] data_dir` (each write an fsynced transaction, so a restart or a crash loses
//! no acknowledged binding) with an in-memory mirror for lookups on the request path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");
const FILE_NAME: &str = "bindings.redb";

/// What the gateway remembers about one WeChat user of one app. Unknown fields (the
/// `account_id` copy of earlier versions) are ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Verified phone, E.164.
    #[serde(default)]
    pub phone: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub bound_at: u64,
}

impl Binding {
    /// A binding to this verified E.164 phone, made now.
    pub fn new(phone: String) -> Self {
        let bound_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            phone: Some(phone),
            bound_at,
        }
    }
}

/// Where bindings live.
#[async_trait]
pub trait BindingStore: Send + Sync + 'static {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError>;
    /// Record a binding; `Ok` only once it is durable.
    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError>;
    /// Remove a binding; `Ok(false)` when there was none.
    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError>;
}

type Mirror = HashMap<String, HashMap<String, Arc<Binding>>>;

/// Bindings on local disk (redb), or only in memory for the demo.
pub struct LocalBindings {
    db: Option<Arc<Database>>,
    mirror: RwLock<Mirror>,
}

fn db_key(appid: &str, openid: &str) -> String {
    format!("{appid}\n{openid}")
}

fn disk_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Internal(format!("binding store: {e}").into())
}

impl LocalBindings {
    /// Open (or create) `data_dir/bindings.redb` and load it.
    pub fn open(data_dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("session.data_dir {}: {e}", data_dir.display()))?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mirror = load(&db).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self {
            db: Some(Arc::new(db)),
            mirror: RwLock::new(mirror),
        })
    }

    /// Bindings kept in memory only (lost on exit).
    pub fn ephemeral() -> Self {
        Self {
            db: None,
            mirror: RwLock::new(HashMap::new()),
        }
    }

    fn write(
        &self,
        key: String,
        value: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<(), GatewayError>> + use<> {
        let db = self.db.clone();
        async move {
            let Some(db) = db else { return Ok(()) };
            tokio::task::spawn_blocking(move || -> Result<(), GatewayError> {
                let txn = db.begin_write().map_err(disk_error)?;
                {
                    let mut table = txn.open_table(TABLE).map_err(disk_error)?;
                    match &value {
                        Some(v) => table
                            .insert(key.as_str(), v.as_slice())
                            .map(drop)
                            .map_err(disk_error)?,
                        None => table.remove(key.as_str()).map(drop).map_err(disk_error)?,
                    }
                }
                txn.commit().map_err(disk_error)
            })
            .await
            .map_err(disk_error)?
        }
    }
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

#[async_trait]
impl BindingStore for LocalBindings {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError> {
        let mirror = self.mirror.read().map_err(disk_error)?;
        Ok(mirror.get(appid).and_then(|m| m.get(openid)).cloned())
    }

    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError> {
        let bytes = serde_json::to_vec(&binding).map_err(disk_error)?;
        self.write(db_key(appid, openid), Some(bytes)).await?;
        let mut mirror = self.mirror.write().map_err(disk_error)?;
        mirror
            .entry(appid.to_string())
            .or_default()
            .insert(openid.to_string(), Arc::new(binding));
        Ok(())
    }

    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError> {
        if self.get(appid, openid).await?.is_none() {
            return Ok(false);
        }
        self.write(db_key(appid, openid), None).await?;
        let mut mirror = self.mirror.write().map_err(disk_error)?;
        Ok(mirror
            .get_mut(appid)
            .and_then(|m| m.remove(openid))
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bindings_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("wxgate-bindings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = Binding::new("+8613800138000".into());
        {
            let store = LocalBindings::open(&dir).map_err(|e| e.to_string());
            let store = store.as_ref().map_err(String::as_str);
            let Ok(store) = store else {
                panic!("{store:?}", store = store.err())
            };
            assert!(store.put("wx1", "o1", b.clone()).await.is_ok());
            assert!(store.put("wx1", "o2", b.clone()).await.is_ok());
            assert!(matches!(store.remove("wx1", "o2").await, Ok(true)));
        }
        let reopened = LocalBindings::open(&dir);
        let got = match &reopened {
            Ok(s) => (
                s.get("wx1", "o1").await.ok().flatten(),
                s.get("wx1", "o2").await.ok().flatten(),
            ),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(got.0.as_deref(), Some(&b));
        assert!(got.1.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_redb_file_of_an_earlier_version_still_opens() {
        let dir = std::env::temp_dir().join(format!("wxgate-old-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let old = br#"{"phone":"+8613800138000","account_id":"10003","bound_at":1}"#;
        let written = (|| -> Result<(), Box<dyn std::error::Error>> {
            let db = Database::create(dir.join(FILE_NAME))?;
            let txn = db.begin_write()?;
            txn.open_table(TABLE)?.insert("wx1\no1", old.as_slice())?;
            txn.commit()?;
            Ok(())
        })();
        assert!(written.is_ok(), "{written:?}");
        let phone = match LocalBindings::open(&dir) {
            Ok(store) => store.get("wx1", "o1").await.ok().flatten(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            phone.and_then(|b| b.phone.clone()).as_deref(),
            Some("+8613800138000")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bindings_of_earlier_versions_still_read() {
        let old = br#"{"phone":"+8613800138000","account_id":"10003","bound_at":1700000000}"#;
        let b: Result<Binding, _> = serde_json::from_slice(old);
        assert_eq!(
            b.ok(),
            Some(Binding {
                phone: Some("+8613800138000".into()),
                bound_at: 1_700_000_000,
            })
        );
    }
}
