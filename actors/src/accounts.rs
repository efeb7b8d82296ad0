//! In-memory mirror of user accounts and revoked tokens, for authentication without a database
//! round trip. Written only by the registry actor, after the store has committed; read by the
//! server's auth extractor on every request.

use std::sync::Arc;

use dashmap::DashMap;

use crate::model::User;

#[derive(Debug, Default, Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// username → account.
    users: DashMap<String, Arc<User>>,
    /// Revoked token id (`jti`) → the token's own expiry (unix seconds). Entries past their
    /// expiry are pruned: an expired token is rejected anyway.
    revoked: DashMap<String, i64>,
}

impl Accounts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn user(&self, username: &str) -> Option<Arc<User>> {
        self.inner
            .users
            .get(username)
            .map(|u| Arc::clone(u.value()))
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        let mut all: Vec<_> = self
            .inner
            .users
            .iter()
            .map(|u| Arc::clone(u.value()))
            .collect();
        all.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.username.cmp(&b.username))
        });
        all
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        self.inner.revoked.contains_key(jti)
    }

    pub(crate) fn put_user(&self, user: User) {
        self.inner
            .users
            .insert(user.username.clone(), Arc::new(user));
    }

    pub(crate) fn remove_user(&self, username: &str) {
        self.inner.users.remove(username);
    }

    pub(crate) fn revoke(&self, jti: String, expires_at: i64) {
        self.inner.revoked.insert(jti, expires_at);
    }

    /// Drop revocations of tokens that have expired by `now` (unix seconds).
    pub(crate) fn prune_revoked(&self, now: i64) {
        self.inner.revoked.retain(|_, exp| *exp >= now);
    }
}
