//! The serialised `GET /api/agents` bodies, kept per caller while the fleet does not change.
//!
//! A list of a thousand agents is half a megabyte of JSON; building and serialising it costs
//! more than everything else the request does. Between two changes to the fleet (an agent's
//! snapshot or a share) every caller with the same username, role and tag filter gets the same
//! bytes, so the first request after a change builds them and the others clone a [`Bytes`].
//!
//! Correctness rests on [`Fleet::list_version`]: the handler reads the version *before* it
//! lists, and stores the body under that version. A change that lands while the list is built
//! can only make the stored body newer than its version, never older, and the next request sees
//! a newer version and builds again. So a cached body is never staler than an uncached one.
//!
//! Memory is bounded: one entry per (caller, filter), and when the bodies together pass
//! [`MAX_BYTES`] the cache starts over.

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::web::Bytes;
use dashmap::DashMap;
use flotilla_actors::{Fleet, ListVersion, Principal, Visible};

/// The most the cached bodies may hold together.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    username: String,
    admin: bool,
    /// Lower-cased, in the order given.
    tags: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ListCache {
    entries: DashMap<Key, (ListVersion, Bytes)>,
    bytes: AtomicUsize,
}

impl ListCache {
    /// The list body for `who` and `tags`: from the cache if the fleet has not changed since it
    /// was built, else from `build` (given the agents as [`Fleet::list_agents`] returns them).
    pub fn get_or_build<E>(
        &self,
        fleet: &Fleet,
        who: &Principal,
        tags: Vec<String>,
        build: impl FnOnce(&[Visible]) -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        let version = fleet.list_version();
        let key = Key {
            username: who.username.clone(),
            admin: who.is_admin(),
            tags,
        };
        if let Some(entry) = self.entries.get(&key)
            && entry.0 == version
        {
            return Ok(entry.1.clone());
        }
        let body = build(&fleet.list_agents(who, &key.tags))?;
        self.insert(key, version, body.clone());
        Ok(body)
    }

    fn insert(&self, key: Key, version: ListVersion, body: Bytes) {
        let added = body.len();
        if self.bytes.load(Ordering::Relaxed) + added > MAX_BYTES {
            self.entries.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        if added > MAX_BYTES {
            return;
        }
        let replaced = self.entries.insert(key, (version, body));
        let removed = replaced.map_or(0, |(_, old)| old.len());
        // Approximate under races (a clear between the two updates): a bound, not an account.
        self.bytes.fetch_add(added, Ordering::Relaxed);
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(removed))
            });
    }
}
