//! The agent actor: the one writer of one agent.
//!
//! Only this actor changes its agent's container, volumes or stored record. Each mutating message
//! is handled as an [`AtomicResponse`]: the mailbox is not polled again until the operation's
//! Docker and registry calls have all returned, so two concurrent starts, a start racing a delete
//! or a rename racing a stop are serialised by construction, with no locks anywhere else.
//!
//! The actor's state is a plain value ([`AgentState`]). An operation takes a copy, works on it
//! while awaiting Docker and the registry, and hands the result back; the actor then adopts it
//! and publishes a fresh snapshot to the [`Directory`](crate::directory::Directory), which is
//! where every read comes from.
//!
//! Deadlock rule: operations may `send` to the registry and sharing actors (which never call back
//! into agent actors) but never to an agent actor, their own included.

pub mod lifecycle;
pub mod messages;
pub mod spec;

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::config::FleetConfig;
use crate::directory::Directory;
use crate::error::FleetError;
use crate::events::EventBus;
use crate::model::{AgentRecord, AgentView, Phase};
use crate::registry::RegistryActor;
use crate::registry::messages::{RemoveAgent, SaveAgent, SaveAvatar};
use crate::runtime::{ContainerInfo, ContainerRuntime, ContainerState, RuntimeError, labels};
use crate::sharing::SharingActor;
use crate::sharing::messages::AgentRemoved;
use crate::supervisor::Supervisor;
use crate::supervisor::messages::AgentActorStopped;
use crate::templates::TemplateCatalog;

use self::lifecycle::{Decision, Lifecycle};
use self::messages::*;

/// Everything an agent actor talks to. Cheap to clone (addresses and `Arc`s).
#[derive(Clone)]
pub(crate) struct AgentDeps {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub registry: Addr<RegistryActor>,
    pub sharing: Addr<SharingActor>,
    pub supervisor: Addr<Supervisor>,
    pub directory: Directory,
    pub events: EventBus,
    pub config: Arc<FleetConfig>,
    pub templates: Arc<TemplateCatalog>,
}

/// An agent's state as its actor knows it.
#[derive(Debug, Clone)]
pub(crate) struct AgentState {
    pub record: AgentRecord,
    pub lifecycle: Lifecycle,
    /// Id of the agent's container, if it has one.
    pub container: Option<String>,
    /// When the container last started, if known.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl AgentState {
    fn view(&self) -> AgentView {
        AgentView {
            record: self.record.clone(),
            status: self.lifecycle.status(),
            container_id: self.container.clone(),
            container_missing: self.container.is_none(),
            started_at: self.started_at,
        }
    }
}

pub struct AgentActor {
    state: AgentState,
    deps: AgentDeps,
}

impl AgentActor {
    pub(crate) fn new(state: AgentState, deps: AgentDeps) -> Self {
        Self { state, deps }
    }

    /// True when the actor holds no live agent: its create never completed, or it was deleted.
    pub(crate) fn is_unprovisioned(&self) -> bool {
        matches!(
            self.state.lifecycle,
            Lifecycle::Provisioning | Lifecycle::Deleted
        )
    }

    /// Publish the current state to the directory (or withdraw it once the agent is gone).
    fn publish(&self) {
        match self.state.lifecycle {
            Lifecycle::Provisioning => {}
            Lifecycle::Deleted => self.deps.directory.remove(self.state.record.id),
            _ => self.deps.directory.publish(self.state.view()),
        }
    }

    /// Run an operation atomically: the mailbox waits until `op` has finished, then the actor
    /// adopts the state it returns and publishes it.
    fn atomic<T: 'static>(
        &mut self,
        op: impl Future<Output = (AgentState, Result<T, FleetError>)> + 'static,
    ) -> AtomicResponse<Self, Result<T, FleetError>> {
        AtomicResponse::new(Box::pin(op.into_actor(self).map(
            |(state, result), act, ctx| {
                act.state = state;
                act.publish();
                if act.state.lifecycle == Lifecycle::Deleted {
                    ctx.stop();
                }
                result
            },
        )))
    }
}

impl Actor for AgentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Back-pressure: HTTP handlers `send()` and wait for space beyond this.
        ctx.set_mailbox_capacity(64);
        self.publish();
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.deps.supervisor.do_send(AgentActorStopped {
            id: self.state.record.id,
            addr: ctx.address(),
        });
    }
}

impl Handler<Provision> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, _: Provision, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::provision(&deps, &mut st).await;
            (st, r)
        })
    }
}

impl Handler<StartAgent> for AgentActor {
    type Result = AtomicResponse<Self, Result<StartOutcome, FleetError>>;
    fn handle(&mut self, _: StartAgent, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::start(&deps, &mut st).await;
            (st, r)
        })
    }
}

impl Handler<StopAgent> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, _: StopAgent, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::stop(&deps, &mut st).await;
            (st, r)
        })
    }
}

impl Handler<RenameAgent> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, msg: RenameAgent, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::rename(&deps, &mut st, msg.new_name).await;
            (st, r)
        })
    }
}

impl Handler<DeleteAgent> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, _: DeleteAgent, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::delete(&deps, &mut st).await;
            (st, r)
        })
    }
}

impl Handler<SetAvatar> for AgentActor {
    type Result = AtomicResponse<Self, Result<i64, FleetError>>;
    fn handle(&mut self, msg: SetAvatar, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::set_avatar(&deps, &mut st, msg).await;
            (st, r)
        })
    }
}

impl Handler<ContainerObserved> for AgentActor {
    type Result = ();
    fn handle(&mut self, msg: ContainerObserved, _: &mut Self::Context) {
        ops::adopt(&mut self.state, msg.container.as_ref());
        self.publish();
    }
}

/// The operations themselves: plain async functions over the dependencies and a mutable copy of
/// the state. Each leaves the state describing what is true in Docker and the store afterwards,
/// whether it succeeded or not.
mod ops {
    use super::*;
    use crate::agent::spec::{self, HOME};

    /// Take what Docker reports about the container as the truth about the agent.
    pub(super) fn adopt(st: &mut AgentState, info: Option<&ContainerInfo>) {
        if matches!(
            st.lifecycle,
            Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted
        ) {
            return;
        }
        match info {
            Some(info) => {
                st.container = Some(info.id.clone());
                if info.started_at.is_some() || info.state != ContainerState::Running {
                    st.started_at = info.started_at;
                }
                st.lifecycle = match info.state {
                    ContainerState::Running => Lifecycle::Running,
                    ContainerState::Stopped => Lifecycle::Stopped,
                    ContainerState::Paused => Lifecycle::Paused,
                    ContainerState::Restarting => Lifecycle::Restarting,
                };
            }
            None => {
                st.container = None;
                st.started_at = None;
                st.lifecycle = Lifecycle::Stopped;
            }
        }
    }

    /// Re-read the container's state from Docker (one inspect) so guards decide on the truth.
    async fn refresh(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        let info = match &st.container {
            Some(id) => deps.runtime.inspect_container(id).await?,
            None => None,
        };
        adopt(st, info.as_ref());
        Ok(())
    }

    pub(super) async fn provision(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        let result = provision_steps(deps, st).await;
        if let Err(error) = &result {
            warn!(agent = %st.record.name, %error, "create failed, rolling back");
            if let Err(cleanup) = remove_everything(deps, st).await {
                // The row stays in phase `provisioning`; recovery finishes the rollback.
                warn!(agent = %st.record.name, error = %cleanup, "rollback incomplete");
            }
        }
        result
    }

    async fn provision_steps(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        let id = ensure_container(deps, st).await?;
        deps.runtime.start_container(&id).await?;
        let info = deps.runtime.inspect_container(&id).await?;
        let mut record = st.record.clone();
        record.phase = Phase::Ready;
        deps.registry.send(SaveAgent { record }).await??;
        st.record.phase = Phase::Ready;
        st.lifecycle = Lifecycle::Stopped;
        adopt(st, info.as_ref());
        info!(agent = %st.record.name, id = %st.record.id, "agent created");
        let data = json!({ "owner": st.record.owner, "runtime": st.record.runtime });
        deps.events
            .publish("agent_created", st.record.id, &st.record.name, data);
        Ok(())
    }

    pub(super) async fn start(
        deps: &AgentDeps,
        st: &mut AgentState,
    ) -> Result<StartOutcome, FleetError> {
        refresh(deps, st).await?;
        if st.lifecycle.can_start()? == Decision::AlreadyDone {
            return Ok(StartOutcome::AlreadyRunning);
        }
        let id = ensure_container(deps, st).await?;
        deps.runtime.start_container(&id).await?;
        let info = deps.runtime.inspect_container(&id).await?;
        adopt(st, info.as_ref());
        deps.events
            .publish("agent_started", st.record.id, &st.record.name, json!({}));
        Ok(StartOutcome::Started)
    }

    pub(super) async fn stop(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        refresh(deps, st).await?;
        if st.lifecycle.can_stop()? == Decision::AlreadyDone {
            return Ok(());
        }
        if let Some(id) = st.container.clone() {
            deps.runtime
                .stop_container(&id, deps.config.stop_grace)
                .await?;
        }
        st.lifecycle = Lifecycle::Stopped;
        deps.events
            .publish("agent_stopped", st.record.id, &st.record.name, json!({}));
        Ok(())
    }

    pub(super) async fn rename(
        deps: &AgentDeps,
        st: &mut AgentState,
        new_name: String,
    ) -> Result<(), FleetError> {
        st.lifecycle.can_rename()?;
        if new_name == st.record.name {
            return Ok(());
        }
        let old = st.record.clone();
        let mut renamed = old.clone();
        renamed.name = new_name;
        // The registry decides uniqueness; nothing has changed if it refuses.
        deps.registry
            .send(SaveAgent {
                record: renamed.clone(),
            })
            .await??;
        if let Some(id) = st.container.clone() {
            match deps
                .runtime
                .rename_container(&id, &spec::container_name(&renamed.name))
                .await
            {
                Ok(()) => {}
                // Gone from Docker: the next start recreates it under the new name.
                Err(RuntimeError::NotFound(_)) => st.container = None,
                Err(e) => {
                    if let Err(revert) = deps.registry.send(SaveAgent { record: old }).await {
                        warn!(error = %revert, "could not revert rename in the registry");
                    }
                    return Err(e.into());
                }
            }
        }
        st.record = renamed;
        // A stopped container is recreated now so its labels and environment carry the new
        // name; a running one keeps running and is refreshed on its next start.
        if st.lifecycle == Lifecycle::Stopped
            && st.container.is_some()
            && let Err(error) = ensure_container(deps, st).await
        {
            warn!(agent = %st.record.name, %error, "container will be refreshed on next start");
        }
        let data = json!({ "old_name": old.name, "new_name": st.record.name });
        deps.events
            .publish("agent_renamed", st.record.id, &st.record.name, data);
        Ok(())
    }

    pub(super) async fn set_avatar(
        deps: &AgentDeps,
        st: &mut AgentState,
        msg: SetAvatar,
    ) -> Result<i64, FleetError> {
        st.lifecycle.can_configure()?;
        let mut record = st.record.clone();
        // Versions only grow, and differ between uploads in the same millisecond.
        record.avatar_version = Utc::now()
            .timestamp_millis()
            .max(st.record.avatar_version + 1);
        deps.registry
            .send(SaveAvatar {
                record: record.clone(),
                content_type: msg.content_type,
                data: msg.data,
            })
            .await??;
        st.record = record;
        Ok(st.record.avatar_version)
    }

    pub(super) async fn delete(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        st.lifecycle.can_delete()?;
        // Reach Docker before writing anything, so an unreachable daemon fails the delete with
        // no change at all.
        deps.runtime
            .list_containers(labels::AGENT_ID, &st.record.id.to_string())
            .await?;
        if st.record.phase != Phase::Deleting {
            let mut record = st.record.clone();
            record.phase = Phase::Deleting;
            deps.registry.send(SaveAgent { record }).await??;
            st.record.phase = Phase::Deleting;
        }
        st.lifecycle = Lifecycle::Deleting;
        remove_everything(deps, st).await?;
        info!(agent = %st.record.name, id = %st.record.id, "agent deleted");
        deps.events
            .publish("agent_deleted", st.record.id, &st.record.name, json!({}));
        Ok(())
    }

    /// Remove every Docker object carrying the agent's id, then its rows, lease and shares.
    async fn remove_everything(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        let id = st.record.id.to_string();
        let mut containers: Vec<String> = deps
            .runtime
            .list_containers(labels::AGENT_ID, &id)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        containers.extend(st.container.clone());
        containers.sort();
        containers.dedup();
        for container in &containers {
            deps.runtime.remove_container(container).await?;
        }
        st.container = None;
        for volume in deps.runtime.list_volumes(labels::AGENT_ID, &id).await? {
            deps.runtime.remove_volume(&volume).await?;
        }
        deps.registry
            .send(RemoveAgent { id: st.record.id })
            .await??;
        deps.sharing.do_send(AgentRemoved { id: st.record.id });
        st.lifecycle = Lifecycle::Deleted;
        Ok(())
    }

    /// Make sure the agent has a container built from its current spec, and return its id.
    /// Adopts a container of ours found by name, recreates a stale one, and seeds the workspace
    /// when its volume had to be created.
    async fn ensure_container(deps: &AgentDeps, st: &mut AgentState) -> Result<String, FleetError> {
        let spec = spec::container_spec(&deps.config, &st.record)?;
        let desired = spec.labels.get(labels::SPEC).cloned();
        let agent_id = st.record.id.to_string();

        let mut current = match &st.container {
            Some(id) => deps.runtime.inspect_container(id).await?,
            None => None,
        };
        if current.is_none()
            && let Some(found) = deps.runtime.inspect_container(&spec.name).await?
        {
            if found.label(labels::AGENT_ID) != Some(agent_id.as_str()) {
                return Err(FleetError::Conflict(format!(
                    "container name '{}' is used by a container flotilla does not manage",
                    spec.name
                )));
            }
            current = Some(found);
        }
        if let Some(info) = current {
            if info.label(labels::SPEC) == desired.as_deref() {
                st.container = Some(info.id.clone());
                return Ok(info.id);
            }
            debug!(agent = %st.record.name, "container is stale, recreating");
            deps.runtime.remove_container(&info.id).await?;
            st.container = None;
        }

        let volume = spec::workspace_volume(st.record.id);
        let fresh = !deps.runtime.volume_exists(&volume).await?;
        if fresh {
            let labels = spec::object_labels(&deps.config, st.record.id);
            deps.runtime.create_volume(&volume, &labels).await?;
        }
        let id = deps.runtime.create_container(&spec).await?;
        st.container = Some(id.clone());
        if fresh {
            seed_workspace(deps, st, &id).await?;
        }
        Ok(id)
    }

    /// Write the files a new workspace starts with: its template's files, then the runtime's
    /// instructions file (so explicit instructions win over a template's own file).
    async fn seed_workspace(
        deps: &AgentDeps,
        st: &AgentState,
        container: &str,
    ) -> Result<(), FleetError> {
        let mut files: Vec<(&str, &[u8])> = Vec::new();
        if let Some(template) = st
            .record
            .template
            .as_deref()
            .and_then(|name| deps.templates.get(name))
        {
            files.extend(
                template
                    .files
                    .iter()
                    .map(|(p, c)| (p.as_str(), c.as_slice())),
            );
        }
        let instructions_file = st.record.runtime.instructions_file();
        if let Some(instructions) = &st.record.custom_instructions {
            files.retain(|(path, _)| *path != instructions_file);
            files.push((instructions_file, instructions.as_bytes()));
        }
        if files.is_empty() {
            return Ok(());
        }
        let archive = spec::workspace_archive(&files)?;
        deps.runtime.put_archive(container, HOME, archive).await?;
        Ok(())
    }
}
