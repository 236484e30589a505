//! Which sessions belong to which user, for the memory store: the index behind
//! `[session] max_per_user` and the admin's "list / end this user's sessions".
//!
//! Entries are kept in creation order. The store adds one per `put` and forgets one when
//! it removes or sweeps a session, so the index holds no more than the store does; its
//! lock is never held while a shard's lock is taken the other way round (the store always
//! lets go of a shard before it touches the index).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{Session, TokenHash};

/// A user: appid and openid.
type User = (Arc<str>, Box<str>);

/// One session of a user: its token hash and when it was made.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub key: TokenHash,
    pub created_at: SystemTime,
}

#[derive(Default)]
pub struct UserIndex(Mutex<HashMap<User, Vec<Entry>>>);

fn user_of(session: &Session) -> User {
    (session.appid.clone(), session.openid.clone())
}

impl UserIndex {
    fn lock(&self) -> MutexGuard<'_, HashMap<User, Vec<Entry>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `key` is a new session of its user, made `created_at`.
    pub fn add(&self, key: TokenHash, session: &Session, created_at: SystemTime) {
        self.lock()
            .entry(user_of(session))
            .or_default()
            .push(Entry { key, created_at });
    }

    /// Forget these sessions (removed or expired).
    pub fn forget<'a>(&self, gone: impl IntoIterator<Item = (TokenHash, &'a Session)>) {
        let mut users = self.lock();
        for (key, session) in gone {
            let user = user_of(session);
            if let Some(entries) = users.get_mut(&user) {
                entries.retain(|e| e.key != key);
                if entries.is_empty() {
                    users.remove(&user);
                }
            }
        }
    }

    /// The user's sessions, oldest first.
    pub fn entries(&self, appid: &str, openid: &str) -> Vec<Entry> {
        let user: User = (Arc::from(appid), openid.into());
        self.lock().get(&user).cloned().unwrap_or_default()
    }
}
