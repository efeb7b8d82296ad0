//! The directory: published snapshots of every agent, for reads that must not wait.
//!
//! Each agent's actor is the only writer of its own entry: it publishes a fresh
//! [`AgentView`] after every change and removes it when the agent is deleted. Handlers read
//! entries lock-free (a DashMap shard read and an `Arc` clone), so listing thousands of agents
//! never waits behind a slow `stop`, and never calls Docker.
//!
//! Every change bumps a version number ([`Directory::version`]) after it is visible, so a reader
//! that noted the version before reading can tell whether what it built from the entries is
//! still current (the server's cache of serialised agent lists relies on it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::model::{AgentId, AgentView};

#[derive(Debug, Default, Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Agent id → latest view. Written only by that agent's actor.
    by_id: DashMap<AgentId, Arc<AgentView>>,
    /// Agent name → id, kept in step with `by_id` by [`Directory::publish`] and
    /// [`Directory::remove`]. Name uniqueness itself is enforced by the registry.
    by_name: DashMap<String, AgentId>,
    /// Agent id → container starts seen in its views, for `flotilla_agent_restarts_total`.
    /// Kept in step with `by_id` by [`Directory::publish`] and [`Directory::remove`].
    starts: DashMap<AgentId, Starts>,
    /// Bumped after every publish and remove (see the module doc).
    version: AtomicU64,
}

/// The container starts [`Directory::publish`] has seen of one agent.
#[derive(Debug, Clone, Copy)]
struct Starts {
    /// The latest known start time of its container.
    last: chrono::DateTime<chrono::Utc>,
    /// Starts seen after the first one.
    restarts: u64,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Publish an agent's new view, moving its name entry if it was renamed.
    pub fn publish(&self, view: AgentView) {
        let id = view.record.id;
        let name = view.record.name.clone();
        if let Some(started) = view.started_at {
            self.inner
                .starts
                .entry(id)
                .and_modify(|s| {
                    if s.last != started {
                        s.last = started;
                        s.restarts += 1;
                    }
                })
                .or_insert(Starts {
                    last: started,
                    restarts: 0,
                });
        }
        let previous = self.inner.by_id.insert(id, Arc::new(view));
        if let Some(prev) = previous
            && prev.record.name != name
        {
            self.inner
                .by_name
                .remove_if(&prev.record.name, |_, owner| *owner == id);
        }
        self.inner.by_name.insert(name, id);
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// Remove an agent's entry (it was deleted, or its creation was rolled back).
    pub fn remove(&self, id: AgentId) {
        self.inner.starts.remove(&id);
        if let Some((_, prev)) = self.inner.by_id.remove(&id) {
            self.inner
                .by_name
                .remove_if(&prev.record.name, |_, owner| *owner == id);
        }
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// The number of changes so far. Read it *before* reading entries: anything built from
    /// them is current for as long as the version stays the same.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    pub fn get(&self, id: AgentId) -> Option<Arc<AgentView>> {
        self.inner.by_id.get(&id).map(|e| Arc::clone(e.value()))
    }

    pub fn by_name(&self, name: &str) -> Option<Arc<AgentView>> {
        let id = *self.inner.by_name.get(name)?.value();
        self.get(id).filter(|v| v.record.name == name)
    }

    /// Every published view, in no particular order.
    pub fn all(&self) -> Vec<Arc<AgentView>> {
        self.inner
            .by_id
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect()
    }

    /// How often the agent's container started again after the first start seen in its views
    /// (a restart by Docker's restart policy, a start after a stop, a recreate).
    pub fn restarts(&self, id: AgentId) -> u64 {
        self.inner.starts.get(&id).map_or(0, |s| s.restarts)
    }

    pub fn len(&self) -> usize {
        self.inner.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.by_id.is_empty()
    }
}
