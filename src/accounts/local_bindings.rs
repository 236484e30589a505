//! Bindings of the memory store: on local disk (see [`super::disk`]), mirrored in memory.
//!
//! Lookups on the request path read the mirror only. A change is committed to disk (an
//! fsynced redb transaction, on a blocking thread) before the mirror shows it and before
//! it is acknowledged, so a restart or a crash loses no acknowledged binding, and a write
//! the disk refused leaves nothing behind. The demo keeps bindings in memory only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use super::bindings::{Binding, BindingStore};
use super::disk::{Disk, Mirror};
use crate::error::GatewayError;

/// Bindings on local disk (redb), or only in memory for the demo.
pub struct LocalBindings {
    disk: Option<Arc<Disk>>,
    mirror: Arc<RwLock<Mirror>>,
    /// Bumped after every change the mirror shows.
    generation: Arc<AtomicU64>,
}

fn db_key(appid: &str, openid: &str) -> String {
    format!("{appid}\n{openid}")
}

fn disk_error(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Internal(format!("binding store: {e}").into())
}

impl LocalBindings {
    /// Open (or create) `data_dir/bindings.redb` and load it.
    pub fn open(data_dir: &std::path::Path) -> Result<Self, String> {
        let (disk, mirror) = Disk::open(data_dir)?;
        Ok(Self {
            disk: Some(Arc::new(disk)),
            mirror: Arc::new(RwLock::new(mirror)),
            generation: Arc::default(),
        })
    }

    /// Bindings kept in memory only (lost on exit).
    pub fn ephemeral() -> Self {
        Self {
            disk: None,
            mirror: Arc::new(RwLock::new(Mirror::new())),
            generation: Arc::default(),
        }
    }

    /// Set (`Some`) or remove `appid`/`openid`'s binding: on disk first, then in the
    /// mirror. Returns whether a binding was there before.
    async fn change(
        &self,
        appid: &str,
        openid: &str,
        binding: Option<Binding>,
    ) -> Result<bool, GatewayError> {
        let bytes = binding
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(disk_error)?;
        let (appid, openid) = (appid.to_string(), openid.to_string());
        let key = db_key(&appid, &openid);
        let apply = move |mirror: &mut Mirror| match binding {
            Some(b) => mirror
                .entry(appid)
                .or_default()
                .insert(openid, Arc::new(b))
                .is_some(),
            None => mirror
                .get_mut(&appid)
                .and_then(|m| m.remove(&openid))
                .is_some(),
        };
        let Some(disk) = self.disk.clone() else {
            let existed = apply(&mut self.mirror.write().unwrap_or_else(PoisonError::into_inner));
            self.generation.fetch_add(1, Ordering::AcqRel);
            return Ok(existed);
        };
        let mirror = self.mirror.clone();
        let written =
            tokio::task::spawn_blocking(move || disk.write(&mirror, &key, bytes.as_deref(), apply))
                .await
                .map_err(disk_error)?
                .map_err(disk_error);
        self.generation.fetch_add(1, Ordering::AcqRel);
        written
    }
}

#[async_trait]
impl BindingStore for LocalBindings {
    async fn get(&self, appid: &str, openid: &str) -> Result<Option<Arc<Binding>>, GatewayError> {
        let mirror = self.mirror.read().unwrap_or_else(PoisonError::into_inner);
        Ok(mirror.get(appid).and_then(|m| m.get(openid)).cloned())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    async fn put(&self, appid: &str, openid: &str, binding: Binding) -> Result<(), GatewayError> {
        self.change(appid, openid, Some(binding)).await.map(drop)
    }

    async fn remove(&self, appid: &str, openid: &str) -> Result<bool, GatewayError> {
        if self.get(appid, openid).await?.is_none() {
            return Ok(false);
        }
        self.change(appid, openid, None).await
    }

    /// `Ok` unless the last write failed and the disk still refuses a probe write.
    async fn ready(&self) -> Result<(), GatewayError> {
        let Some(disk) = self.disk.clone() else {
            return Ok(());
        };
        if !disk.is_failing() {
            return Ok(());
        }
        let mirror = self.mirror.clone();
        tokio::task::spawn_blocking(move || disk.probe(&mirror))
            .await
            .map_err(disk_error)?
            .map_err(disk_error)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::disk::{FILE_NAME, write_raw};
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("wxgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn open(dir: &std::path::Path) -> LocalBindings {
        LocalBindings::open(dir).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn bindings_survive_reopening() {
        let dir = temp_dir("bindings");
        let b = Binding::new("+8613800138000".into());
        {
            let store = open(&dir);
            assert!(store.put("wx1", "o1", b.clone()).await.is_ok());
            assert!(store.put("wx1", "o2", b.clone()).await.is_ok());
            assert!(matches!(store.remove("wx1", "o2").await, Ok(true)));
            assert!(matches!(store.remove("wx1", "o2").await, Ok(false)));
            assert!(store.ready().await.is_ok());
        }
        let reopened = open(&dir);
        let o1 = reopened.get("wx1", "o1").await.ok().flatten();
        assert_eq!(o1.as_deref(), Some(&b));
        assert!(matches!(reopened.get("wx1", "o2").await, Ok(None)));
        let mode = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.permissions().mode());
        assert_eq!(mode(&dir).ok().map(|m| m & 0o777), Some(0o700));
        assert_eq!(
            mode(&dir.join(FILE_NAME)).ok().map(|m| m & 0o777),
            Some(0o600)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_redb_file_of_an_earlier_version_still_opens() {
        let dir = temp_dir("old");
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let old = br#"{"phone":"+8613800138000","account_id":"10003","bound_at":1}"#;
        let written = write_raw(&dir, "wx1\no1", old);
        assert!(written.is_ok(), "{written:?}");
        let got = open(&dir).get("wx1", "o1").await.ok().flatten();
        assert_eq!(
            got.and_then(|b| b.phone.clone()).as_deref(),
            Some("+8613800138000")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
