//! Who may do what to which agent: the access table of DESIGN.md, in one function.
//!
//! | who         | may                                                                      |
//! |-------------|--------------------------------------------------------------------------|
//! | admin       | everything, every agent                                                  |
//! | owner       | everything on their agents (system agents: no delete, rename or config)  |
//! | shared user | read the agent and start/stop it                                         |
//! | anyone else | nothing: the agent does not exist for them (404, never 403)              |
//!
//! System agents cannot be deleted, renamed or reconfigured by anyone. The shares themselves
//! live in the [`AccessIndex`], an in-memory mirror of the `share` table kept by the sharing
//! actor, so an access check costs no database round trip.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use dashmap::DashMap;

use crate::error::FleetError;
use crate::model::{AgentId, AgentView, Principal};

/// One share of an agent with a user, by email (the user need not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub agent_id: AgentId,
    /// Lower-cased.
    pub email: String,
    pub shared_by: String,
    pub created_at: DateTime<Utc>,
}

/// How the caller relates to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLevel {
    Admin,
    Owner,
    Shared,
}

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Get, info, files, logs, stats, config GETs, folders GET.
    Read,
    /// Start and stop.
    Operate,
    /// Credentials, SSH access, sharing, avatar.
    Manage,
    /// Runtime configuration PUTs (autonomy, read-only, timeout). Never on system agents.
    Configure,
    Rename,
    Delete,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Operate => "start or stop",
            Action::Manage => "change",
            Action::Configure => "reconfigure",
            Action::Rename => "rename",
            Action::Delete => "delete",
        }
    }
}

/// In-memory mirror of the shares: agent → (lower-cased email → share). Written only by the
/// sharing actor, after the store has committed.
#[derive(Debug, Default, Clone)]
pub struct AccessIndex {
    shares: Arc<DashMap<AgentId, BTreeMap<String, Share>>>,
    /// Bumped after every change, as [`crate::directory::Directory::version`] is.
    version: Arc<AtomicU64>,
}

impl AccessIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_shared_with(&self, agent: AgentId, username: &str) -> bool {
        self.shares
            .get(&agent)
            .is_some_and(|set| set.contains_key(username))
    }

    /// The agent's shares, newest first.
    pub fn shares_of(&self, agent: AgentId) -> Vec<Share> {
        let mut out: Vec<Share> = self
            .shares
            .get(&agent)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.email.cmp(&b.email)));
        out
    }

    pub(crate) fn grant(&self, share: Share) {
        self.shares
            .entry(share.agent_id)
            .or_default()
            .insert(share.email.clone(), share);
        self.changed();
    }

    pub(crate) fn revoke(&self, agent: AgentId, email: &str) {
        if let Some(mut set) = self.shares.get_mut(&agent) {
            set.remove(email);
        }
        self.shares.remove_if(&agent, |_, set| set.is_empty());
        self.changed();
    }

    pub(crate) fn forget_agent(&self, agent: AgentId) {
        self.shares.remove(&agent);
        self.changed();
    }

    /// Drop every share with `email`.
    pub(crate) fn forget_email(&self, email: &str) {
        self.shares.retain(|_, set| {
            set.remove(email);
            !set.is_empty()
        });
        self.changed();
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The number of changes so far; read it before reading shares (see
    /// [`crate::directory::Directory::version`]).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The caller's relation to the agent, if any.
    pub fn level(&self, who: &Principal, view: &AgentView) -> Option<AccessLevel> {
        if who.is_admin() {
            Some(AccessLevel::Admin)
        } else if view.record.owner == who.username {
            Some(AccessLevel::Owner)
        } else if self.is_shared_with(view.record.id, &who.username) {
            Some(AccessLevel::Shared)
        } else {
            None
        }
    }

    /// Apply the access table. Invisible agents are `NotFound` whatever the action.
    pub fn authorize(
        &self,
        who: &Principal,
        view: &AgentView,
        action: Action,
    ) -> Result<AccessLevel, FleetError> {
        let Some(level) = self.level(who, view) else {
            return Err(FleetError::agent_not_found(&view.record.name));
        };
        let system = view.record.system;
        let allowed = match (level, action) {
            (_, Action::Read) => true,
            (_, Action::Operate) => true,
            (AccessLevel::Shared, _) => false,
            (_, Action::Rename | Action::Delete | Action::Configure) => !system,
            (AccessLevel::Admin, Action::Manage) => true,
            (AccessLevel::Owner, Action::Manage) => !system,
        };
        if allowed {
            Ok(level)
        } else if level == AccessLevel::Shared {
            Err(FleetError::Forbidden(format!(
                "only the owner or an admin may {} agent '{}'",
                action.verb(),
                view.record.name
            )))
        } else {
            Err(FleetError::Forbidden(format!(
                "'{}' is a system agent and cannot be {}d",
                view.record.name,
                action.verb()
            )))
        }
    }
}
