//! Shared folders between agents.
//!
//! A *producer* (expose enabled) publishes `~/shared-out`, a volume of its own named by its id.
//! A *consumer* (consume enabled) mounts, read-only at `~/shared-in/{producer-name}`, the shared
//! folder of every producer its **owner** may access (same owner, an admin owner, or a producer
//! shared with the owner) — the access table decides, nothing else.
//!
//! Mounts are part of the container spec, so they change only when a container is (re)created:
//! at the next start, or at once on request (`apply`). `restart_required` says when the running
//! container is behind its configuration (a folder toggled, a producer appeared, renamed or
//! gone). Deleting a producer first detaches its folder from every consumer container (Docker
//! cannot remove a volume a container references), then removes it with the producer.

use std::sync::Arc;

use crate::access::{AccessIndex, Action};
use crate::accounts::Accounts;
use crate::agent::AgentDeps;
use crate::agent::messages::{ConfigChange, ConfigOutcome, DetachProducer};
use crate::agent::spec::{self, Producer};
use crate::directory::Directory;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::{AgentId, AgentRecord, AgentView, Principal, Role};
use crate::runtime::labels;

/// The producers whose shared folders an agent with `record` may mount, by name. Empty unless
/// it consumes.
pub(crate) fn producers_for(deps: &AgentDeps, record: &AgentRecord) -> Vec<Producer> {
    if !record.consume_enabled {
        return Vec::new();
    }
    available(&deps.directory, &deps.access, &deps.accounts, record)
}

/// Every exposing agent (other than `consumer`) that `consumer`'s owner may access, by name.
fn available(
    directory: &Directory,
    access: &AccessIndex,
    accounts: &Accounts,
    consumer: &AgentRecord,
) -> Vec<Producer> {
    let owner = Principal {
        username: consumer.owner.clone(),
        role: accounts
            .user(&consumer.owner)
            .map_or(Role::User, |u| u.role),
    };
    let mut producers: Vec<Producer> = directory
        .all()
        .into_iter()
        .filter(|p| p.record.id != consumer.id && p.record.expose_enabled)
        .filter(|p| access.level(&owner, p).is_some())
        .map(|p| Producer {
            id: p.record.id,
            name: p.record.name.clone(),
        })
        .collect();
    producers.sort_by(|a, b| a.name.cmp(&b.name));
    producers
}

/// A producer's folder as a consumer sees it.
#[derive(Debug, Clone)]
pub struct ConsumedFolder {
    pub producer: Producer,
    /// Its current container mounts it.
    pub currently_mounted: bool,
}

/// A producer's consumers: each agent with whether its current container mounts the folder.
pub type Consumers = Vec<(Arc<AgentView>, bool)>;

/// An agent's shared-folder configuration and how far its container follows it.
#[derive(Debug, Clone)]
pub struct FolderStatus {
    pub agent: Arc<AgentView>,
    /// The folders it mounts, or would mount at its next start.
    pub consumed: Vec<ConsumedFolder>,
    /// The container does not match the configuration yet (applied at the next start, or with
    /// `apply`).
    pub restart_required: bool,
}

impl Fleet {
    fn folder_status(&self, view: Arc<AgentView>) -> Result<FolderStatus, FleetError> {
        let inner = &self.inner;
        let producers = if view.record.consume_enabled {
            available(
                &inner.directory,
                &inner.access,
                &inner.accounts,
                &view.record,
            )
        } else {
            Vec::new()
        };
        let desired = spec::container_spec(&inner.config, &view.record, &producers)?;
        let restart_required = view.container_id.is_some()
            && view.spec_digest.as_deref() != desired.labels.get(labels::SPEC).map(String::as_str);
        let consumed = producers
            .into_iter()
            .map(|producer| ConsumedFolder {
                currently_mounted: view.mounted_producers.contains(&producer.id),
                producer,
            })
            .collect();
        Ok(FolderStatus {
            agent: view,
            consumed,
            restart_required,
        })
    }

    /// The agent's folder configuration (anyone who can read it).
    pub fn folders(&self, who: &Principal, name: &str) -> Result<FolderStatus, FleetError> {
        let visible = self.agent(who, name, Action::Read)?;
        self.folder_status(visible.view)
    }

    /// Change what the agent exposes and consumes (owner or admin; not on system agents).
    /// With `apply`, a running agent's container is recreated at once.
    pub async fn set_folders(
        &self,
        who: &Principal,
        name: &str,
        expose: Option<bool>,
        consume: Option<bool>,
        apply: bool,
    ) -> Result<(FolderStatus, ConfigOutcome), FleetError> {
        let change = ConfigChange::Folders {
            expose,
            consume,
            apply,
        };
        let outcome = self.configure(who, name, change).await?;
        Ok((self.folders(who, name)?, outcome))
    }

    /// The producers whose folders this agent may mount (whether or not it consumes now).
    pub fn available_folders(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(Arc<AgentView>, Vec<ConsumedFolder>), FleetError> {
        let view = self.agent(who, name, Action::Read)?.view;
        let inner = &self.inner;
        let folders = available(
            &inner.directory,
            &inner.access,
            &inner.accounts,
            &view.record,
        )
        .into_iter()
        .map(|producer| ConsumedFolder {
            currently_mounted: view.mounted_producers.contains(&producer.id),
            producer,
        })
        .collect();
        Ok((view, folders))
    }

    /// The agents (visible to `who`) that consume this agent's shared folder, by name, each
    /// with whether its current container mounts it.
    pub fn folder_consumers(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<(Arc<AgentView>, Consumers), FleetError> {
        let producer = self.agent(who, name, Action::Read)?.view;
        let inner = &self.inner;
        let mut consumers: Consumers = Vec::new();
        if producer.record.expose_enabled {
            for view in inner.directory.all() {
                if !view.record.consume_enabled
                    || view.record.id == producer.record.id
                    || inner.access.level(who, &view).is_none()
                {
                    continue;
                }
                let available = available(
                    &inner.directory,
                    &inner.access,
                    &inner.accounts,
                    &view.record,
                );
                if available.iter().any(|p| p.id == producer.record.id) {
                    let mounted = view.mounted_producers.contains(&producer.record.id);
                    consumers.push((view, mounted));
                }
            }
        }
        consumers.sort_by(|a, b| a.0.record.name.cmp(&b.0.record.name));
        Ok((producer, consumers))
    }

    /// Before a producer is deleted: make every consumer container that mounts its folder drop
    /// it (each through its own actor).
    pub(crate) async fn detach_from_consumers(&self, producer: AgentId) -> Result<(), FleetError> {
        let consumers: Vec<Arc<AgentView>> = self
            .inner
            .directory
            .all()
            .into_iter()
            .filter(|v| v.mounted_producers.contains(&producer))
            .collect();
        for consumer in consumers {
            let Some(addr) = self
                .inner
                .agents
                .get(&consumer.record.id)
                .map(|a| a.value().clone())
            else {
                continue;
            };
            self.ask(&consumer.record.name, &addr, DetachProducer { producer })
                .await?;
        }
        Ok(())
    }
}
