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
pub mod runtime_files;
pub mod spec;

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use serde_json::json;
use tracing::{debug, info, warn};

use crate::access::AccessIndex;
use crate::accounts::Accounts;
use crate::config::FleetConfig;
use crate::directory::Directory;
use crate::error::FleetError;
use crate::events::EventBus;
use crate::model::{AgentId, AgentRecord, AgentView, Phase};
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
    /// The credential vault: the server's key and reads of sealed vaults (see `credentials`).
    pub vault: crate::credentials::Vault,
    /// Read-only here: which producers' shared folders this agent's owner may mount.
    pub access: AccessIndex,
    pub accounts: Accounts,
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
    /// Digest of the spec the current container was built from.
    pub spec_digest: Option<String>,
    /// Producers whose shared folders the current container mounts.
    pub mounted_producers: Vec<AgentId>,
    /// Digest of the runtime files this actor last wrote into the state volume
    /// ([`runtime_files::digest`]); `None` until it writes them.
    pub runtime_files: Option<u64>,
    /// Events of the operation in progress, sent once its outcome is published to the
    /// directory — so a client reacting to an event reads the state that caused it.
    pub outbox: Vec<(&'static str, serde_json::Value)>,
}

impl AgentState {
    /// The state of an agent whose container is not known yet.
    pub fn new(record: AgentRecord, lifecycle: Lifecycle) -> Self {
        Self {
            record,
            lifecycle,
            container: None,
            started_at: None,
            spec_digest: None,
            mounted_producers: Vec::new(),
            runtime_files: None,
            outbox: Vec::new(),
        }
    }

    /// Take what Docker reports about the agent's container (`None`: it has none) as the truth,
    /// for a state being rebuilt outside an operation (a restarted actor).
    pub(crate) fn observe(&mut self, container: Option<&ContainerInfo>) {
        ops::adopt(self, container);
    }

    /// Queue an event for after the operation.
    pub fn emit(&mut self, event: &'static str, data: serde_json::Value) {
        self.outbox.push((event, data));
    }

    fn view(&self) -> AgentView {
        AgentView {
            record: self.record.clone(),
            status: self.lifecycle.status(),
            container_id: self.container.clone(),
            container_missing: self.container.is_none(),
            started_at: self.started_at,
            spec_digest: self.spec_digest.clone(),
            mounted_producers: self.mounted_producers.clone(),
        }
    }
}

pub struct AgentActor {
    state: AgentState,
    deps: AgentDeps,
    /// A [`FinishRemoval`] retry is scheduled (at most one at a time).
    removal_scheduled: bool,
    /// The actor is stopping on purpose (its agent is gone, or its create never completed).
    /// Any other stop — a panic in a handler, which actix turns into a stop — is a crash, and
    /// the supervisor restarts the actor.
    retiring: bool,
}

/// How long an agent whose removal could not be finished (Docker unreachable mid-delete, or a
/// create whose rollback failed) waits before trying again.
const REMOVAL_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

impl AgentActor {
    pub(crate) fn new(state: AgentState, deps: AgentDeps) -> Self {
        Self {
            state,
            deps,
            removal_scheduled: false,
            retiring: false,
        }
    }

    /// Stop on purpose: the supervisor forgets this actor instead of restarting it.
    pub(crate) fn retire(&mut self, ctx: &mut Context<Self>) {
        self.retiring = true;
        ctx.stop();
    }

    /// True when the actor holds no live agent: its create never completed, or it was deleted.
    pub(crate) fn is_unprovisioned(&self) -> bool {
        matches!(
            self.state.lifecycle,
            Lifecycle::Provisioning | Lifecycle::Deleted
        )
    }

    /// Publish the current state to the directory (or withdraw it once the agent is gone),
    /// then send the events the last operation queued.
    ///
    /// An agent whose create never completed (its row is still in phase `provisioning`) is never
    /// published, also while its rollback is being finished: it was never acknowledged.
    fn publish(&mut self) {
        match self.state.lifecycle {
            Lifecycle::Deleted => self.deps.directory.remove(self.state.record.id),
            Lifecycle::Provisioning => {}
            _ if self.state.record.phase == Phase::Provisioning => {}
            _ => self.deps.directory.publish(self.state.view()),
        }
        for (event, data) in std::mem::take(&mut self.state.outbox) {
            self.deps
                .events
                .publish(event, self.state.record.id, &self.state.record.name, data);
        }
    }

    /// Run an operation atomically: the mailbox waits until `op` has finished, then the actor
    /// adopts the state it returns and publishes it. An agent left half-removed (`Deleting`)
    /// gets its removal retried until it is done.
    fn atomic<T: 'static>(
        &mut self,
        op: impl Future<Output = (AgentState, Result<T, FleetError>)> + 'static,
    ) -> AtomicResponse<Self, Result<T, FleetError>> {
        let fault = self.injected_fault();
        AtomicResponse::new(Box::pin(
            async move {
                if fault {
                    injected_panic();
                }
                op.await
            }
            .into_actor(self)
            .map(|(state, result), act, ctx| {
                act.state = state;
                act.after_operation(ctx);
                result
            }),
        ))
    }

    /// Publish the state an operation left, then stop (deleted) or schedule the end of an
    /// unfinished removal.
    fn after_operation(&mut self, ctx: &mut Context<Self>) {
        self.publish();
        match self.state.lifecycle {
            Lifecycle::Deleted => self.retire(ctx),
            Lifecycle::Deleting if !self.removal_scheduled => {
                self.removal_scheduled = true;
                ctx.run_later(REMOVAL_RETRY, |act, ctx| {
                    act.removal_scheduled = false;
                    ctx.address().do_send(FinishRemoval);
                });
            }
            _ => {}
        }
    }

    /// Whether the test-only fault plan (see [`crate::faults`]) wants this operation to panic.
    /// Always false in a server: only tests build a config with a fault plan.
    fn injected_fault(&self) -> bool {
        self.deps
            .config
            .faults
            .as_ref()
            .is_some_and(|plan| plan.take_panic(&self.state.record.name))
    }
}

/// The panic of the test-only fault hook ([`crate::faults`]): it kills the actor the way a bug
/// would, so that the supervisor's restart can be tested.
#[allow(clippy::panic)]
fn injected_panic() -> ! {
    panic!("injected test fault: agent operation panicked")
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
            crashed: !self.retiring,
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

impl Handler<FinishRemoval> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, _: FinishRemoval, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            if st.lifecycle != Lifecycle::Deleting {
                return (st, Ok(()));
            }
            let r = ops::delete(&deps, &mut st).await;
            if let Err(error) = &r {
                debug!(agent = %st.record.name, %error, "removal still unfinished; will retry");
            }
            (st, r)
        })
    }
}

impl Handler<Reconcile> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, _: Reconcile, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::reconcile(&deps, &mut st).await;
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

impl Handler<Configure> for AgentActor {
    type Result = AtomicResponse<Self, Result<ConfigOutcome, FleetError>>;
    fn handle(&mut self, msg: Configure, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::configure(&deps, &mut st, msg.change).await;
            (st, r)
        })
    }
}

impl Handler<DetachProducer> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, msg: DetachProducer, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::detach_producer(&deps, &mut st, msg.producer).await;
            (st, r)
        })
    }
}

impl Handler<WriteHomeFiles> for AgentActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;
    fn handle(&mut self, msg: WriteHomeFiles, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::write_home_files(&deps, &mut st, msg.files).await;
            (st, r)
        })
    }
}

impl Handler<InjectCredentials> for AgentActor {
    type Result = AtomicResponse<Self, Result<crate::credentials::Injected, FleetError>>;
    fn handle(&mut self, msg: InjectCredentials, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        self.atomic(async move {
            let r = ops::inject_credentials(&deps, &mut st, msg.files).await;
            (st, r)
        })
    }
}

impl Handler<ContainerEventSeen> for AgentActor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: ContainerEventSeen, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        AtomicResponse::new(Box::pin(
            async move {
                ops::on_container_event(&deps, &mut st, msg).await;
                st
            }
            .into_actor(self)
            .map(|st, act, _| {
                act.state = st;
                act.publish();
            }),
        ))
    }
}

impl Handler<RefreshFromDocker> for AgentActor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: RefreshFromDocker, _: &mut Self::Context) -> Self::Result {
        let (deps, mut st) = (self.deps.clone(), self.state.clone());
        AtomicResponse::new(Box::pin(
            async move {
                if let Err(error) = ops::refresh_or_find(&deps, &mut st).await {
                    debug!(agent = %st.record.name, %error, "refresh after reconnect failed");
                }
                st
            }
            .into_actor(self)
            .map(|st, act, _| {
                act.state = st;
                act.publish();
            }),
        ))
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
                st.spec_digest = info.label(labels::SPEC).map(str::to_string);
                st.mounted_producers = spec::consumed_producers(info);
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
                st.spec_digest = None;
                st.mounted_producers.clear();
                st.started_at = None;
                st.lifecycle = Lifecycle::Stopped;
            }
        }
    }

    /// React to a Docker event about a container: only events about the agent's current
    /// container count (old containers of a recreate are ignored). A container that stops while
    /// flotilla thought it running died outside flotilla: `agent_died`, with its exit code and
    /// whether the kernel's OOM killer did it.
    pub(super) async fn on_container_event(
        deps: &AgentDeps,
        st: &mut AgentState,
        event: ContainerEventSeen,
    ) {
        if st.container.as_deref() != Some(event.container_id.as_str()) {
            return;
        }
        // Only state changes matter. (A `kill` is followed by its `die`: re-reading the
        // container on the `kill` would see it stopped already and miss the death.)
        if !matches!(
            event.action.as_str(),
            "start" | "die" | "destroy" | "pause" | "unpause"
        ) {
            return;
        }
        let was = st.lifecycle;
        if event.action == "destroy" {
            adopt(st, None);
            return;
        }
        let info = match deps.runtime.inspect_container(&event.container_id).await {
            Ok(info) => info,
            Err(error) => {
                debug!(agent = %st.record.name, %error, "could not inspect after an event");
                return;
            }
        };
        adopt(st, info.as_ref());
        if event.action == "die"
            && matches!(
                was,
                Lifecycle::Running | Lifecycle::Restarting | Lifecycle::Paused
            )
        {
            let oom = info.as_ref().is_some_and(|i| i.oom_killed);
            let data = json!({
                "exit_code": event.exit_code,
                "oom_killed": oom,
                // With `unless-stopped`, Docker restarts a crashed agent on its own.
                "restarting": st.lifecycle != Lifecycle::Stopped,
            });
            warn!(agent = %st.record.name, exit_code = ?event.exit_code, oom, "agent died outside flotilla");
            st.emit("agent_died", data);
        }
    }

    /// [`refresh`], and when the agent has no known container, look for one of its own by name.
    pub(super) async fn refresh_or_find(
        deps: &AgentDeps,
        st: &mut AgentState,
    ) -> Result<(), FleetError> {
        if st.container.is_none()
            && !matches!(
                st.lifecycle,
                Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted
            )
        {
            let name = spec::container_name(&st.record.name);
            if let Some(found) = deps.runtime.inspect_container(&name).await?
                && found.label(labels::AGENT_ID) == Some(st.record.id.to_string().as_str())
            {
                adopt(st, Some(&found));
                return Ok(());
            }
        }
        refresh(deps, st).await
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
                // The row stays in phase `provisioning` (so the agent is never published): the
                // actor retries the rollback until it is done (`FinishRemoval`), and recovery
                // finishes it if the server stops first.
                warn!(agent = %st.record.name, error = %cleanup, "rollback incomplete, will retry");
                st.lifecycle = Lifecycle::Deleting;
            }
        }
        result
    }

    async fn provision_steps(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        let id = ensure_container(deps, st, None).await?;
        // A new agent's state volume (named by its new id) was just created: there is no
        // settings.json to merge with, so none is read (an archive read of a container that
        // never ran costs the daemon a mount).
        write_files(deps, st, runtime_files::state_files(&st.record, None)).await?;
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
        st.emit("agent_created", data);
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
        let id = ensure_container(deps, st, None).await?;
        // The vault first, so the runtime's files below merge over an injected settings file.
        let credentials = restore_credentials(deps, st, &id).await;
        // Re-applied on every start: the runtime's settings follow the stored configuration
        // even if the agent (or a recreated container) changed them.
        apply_runtime_files(deps, st, &id).await?;
        deps.runtime.start_container(&id).await?;
        let info = deps.runtime.inspect_container(&id).await?;
        adopt(st, info.as_ref());
        st.emit("agent_started", json!({}));
        Ok(StartOutcome::Started { credentials })
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
        st.emit("agent_stopped", json!({}));
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
            && let Err(error) = ensure_container(deps, st, None).await
        {
            warn!(agent = %st.record.name, %error, "container will be refreshed on next start");
        }
        let data = json!({ "old_name": old.name, "new_name": st.record.name });
        st.emit("agent_renamed", data);
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

    pub(super) async fn configure(
        deps: &AgentDeps,
        st: &mut AgentState,
        change: ConfigChange,
    ) -> Result<ConfigOutcome, FleetError> {
        st.lifecycle.can_configure()?;
        // Reach Docker before writing anything: with the daemon unreachable the change fails
        // (503) with nothing stored, instead of being stored and then reported as failed.
        refresh(deps, st).await?;
        let mut record = st.record.clone();
        // Recreate a running container at once: read-only toggles (the mount is the
        // enforcement) and folder changes asked to apply now.
        let mut recreate_if_running = false;
        let setting = match &change {
            ConfigChange::Autonomy(enabled) => {
                record.autonomy_enabled = *enabled;
                "autonomy"
            }
            ConfigChange::ReadOnly { enabled, patterns } => {
                recreate_if_running = record.read_only_enabled != *enabled;
                record.read_only_enabled = *enabled;
                if let Some(patterns) = patterns {
                    record.read_only_patterns = patterns.clone();
                }
                "read_only"
            }
            ConfigChange::Timeout(seconds) => {
                record.execution_timeout_seconds = *seconds;
                "timeout"
            }
            ConfigChange::Folders {
                expose,
                consume,
                apply,
            } => {
                if let Some(expose) = expose {
                    record.expose_enabled = *expose;
                }
                if let Some(consume) = consume {
                    record.consume_enabled = *consume;
                }
                recreate_if_running = *apply;
                "folders"
            }
        };
        let mut outcome = ConfigOutcome::default();
        if record != st.record {
            deps.registry
                .send(SaveAgent {
                    record: record.clone(),
                })
                .await??;
            st.record = record;
        } else if !recreate_if_running {
            return Ok(outcome);
        }
        if st.record.expose_enabled {
            // Published at once, so consumers can mount it from their next start.
            let labels = spec::object_labels(&deps.config, st.record.id);
            deps.runtime
                .create_volume(&spec::shared_volume(st.record.id), &labels)
                .await?;
        }
        let (desired, _) = desired_spec(deps, &st.record, None).await?;
        let stale = st.container.is_some()
            && st.spec_digest.as_deref() != desired.labels.get(labels::SPEC).map(String::as_str);
        if recreate_if_running && stale && st.lifecycle == Lifecycle::Running {
            // Same agent id, volumes and port; only the container is new.
            if let Some(old) = st.container.clone() {
                deps.runtime
                    .stop_container(&old, deps.config.stop_grace)
                    .await?;
            }
            st.lifecycle = Lifecycle::Stopped;
            let id = ensure_container(deps, st, None).await?;
            apply_runtime_files(deps, st, &id).await?;
            deps.runtime.start_container(&id).await?;
            let info = deps.runtime.inspect_container(&id).await?;
            adopt(st, info.as_ref());
            outcome.container_recreated = true;
        } else {
            if let Some(id) = st.container.clone() {
                apply_runtime_files(deps, st, &id).await?;
            }
            outcome.applies_on_next_start = stale;
        }
        let data =
            json!({ "setting": setting, "container_recreated": outcome.container_recreated });
        st.emit("agent_config_changed", data);
        Ok(outcome)
    }

    /// Drop a producer's shared folder from this agent's container (the producer is being
    /// deleted, and Docker cannot remove a volume a container still references): recreate the
    /// container without it, restarting it if it was running.
    pub(super) async fn detach_producer(
        deps: &AgentDeps,
        st: &mut AgentState,
        producer: AgentId,
    ) -> Result<(), FleetError> {
        if matches!(st.lifecycle, Lifecycle::Deleting | Lifecycle::Deleted)
            || !st.mounted_producers.contains(&producer)
        {
            return Ok(());
        }
        refresh(deps, st).await?;
        let was_running = st.lifecycle == Lifecycle::Running;
        if let Some(old) = st.container.clone() {
            deps.runtime.remove_container(&old).await?;
            st.container = None;
            st.mounted_producers.clear();
            st.spec_digest = None;
        }
        st.lifecycle = Lifecycle::Stopped;
        let id = ensure_container(deps, st, Some(producer)).await?;
        if was_running {
            apply_runtime_files(deps, st, &id).await?;
            deps.runtime.start_container(&id).await?;
        }
        let info = deps.runtime.inspect_container(&id).await?;
        adopt(st, info.as_ref());
        Ok(())
    }

    /// The container spec the agent should have now, and the producers it mounts (those it may
    /// consume whose shared folder exists), leaving out `exclude`.
    async fn desired_spec(
        deps: &AgentDeps,
        record: &AgentRecord,
        exclude: Option<AgentId>,
    ) -> Result<(crate::runtime::ContainerSpec, Vec<spec::Producer>), FleetError> {
        let mut producers = Vec::new();
        for producer in crate::folders::producers_for(deps, record) {
            // Only folders that exist: mounting a missing volume would create it, unlabelled.
            if Some(producer.id) != exclude
                && deps
                    .runtime
                    .volume_exists(&spec::shared_volume(producer.id))
                    .await?
            {
                producers.push(producer);
            }
        }
        let spec = spec::container_spec(&deps.config, record, &producers)?;
        Ok((spec, producers))
    }

    /// Merge `files` into the agent's vault, store it, and write the files into the home; if
    /// the write fails, put the previous vault back. Contents are never logged.
    pub(super) async fn inject_credentials(
        deps: &AgentDeps,
        st: &mut AgentState,
        files: crate::credentials::CredentialFiles,
    ) -> Result<crate::credentials::Injected, FleetError> {
        use crate::registry::messages::SaveVault;
        st.lifecycle.can_configure()?;
        if let Some(container) = &st.container {
            crate::credentials::check_targets(deps.runtime.as_ref(), container, &files).await?;
        }
        let agent = st.record.id;
        let previous = deps.vault.load_sealed(agent).await?;
        let current = match previous.clone() {
            Some(sealed) => deps.vault.unseal(sealed).await?,
            None => Default::default(),
        };
        let merged = current.merged(&files, "files")?;
        let vault_files = merged.len();
        let sealed = deps.vault.seal(merged).await?;
        deps.registry
            .send(SaveVault {
                agent,
                vault: Some(sealed),
            })
            .await??;
        let written = match crate::credentials::home_archive(&files) {
            Ok(archive) => write_home(deps, st, archive).await,
            Err(e) => Err(e),
        };
        if let Err(error) = written {
            let reverted = deps
                .registry
                .send(SaveVault {
                    agent,
                    vault: previous,
                })
                .await;
            if !matches!(reverted, Ok(Ok(()))) {
                warn!(agent = %st.record.name, "could not put the credential vault back after a failed injection");
            }
            return Err(error);
        }
        Ok(crate::credentials::Injected {
            files_written: files.paths(),
            vault_files,
        })
    }

    /// Restore the agent's vault into its home (at start, after its container exists): every
    /// vault file that is missing from the workspace is written back (a recreated volume, a
    /// deleted file). Files that are present are left alone — the runtime may have refreshed
    /// them (OAuth tokens rotate), and the vault's copy would be older. Never fails the start:
    /// a vault that cannot be read or written is logged (without contents) and reported as
    /// `Failed`.
    async fn restore_credentials(
        deps: &AgentDeps,
        st: &AgentState,
        container: &str,
    ) -> crate::credentials::CredentialsInjection {
        use crate::credentials::CredentialsInjection as Injection;
        let files = match deps.vault.load(st.record.id).await {
            Ok(files) if files.is_empty() => return Injection::Skipped,
            Ok(files) => files,
            Err(error) => {
                warn!(agent = %st.record.name, %error, "credential vault unreadable; starting without it");
                return Injection::Failed;
            }
        };
        let mut missing = Vec::new();
        for (path, content) in files.iter() {
            match deps
                .runtime
                .stat_path(container, &format!("{HOME}/{path}"))
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => missing.push((path.to_string(), content.clone())),
                Err(error) => {
                    warn!(agent = %st.record.name, %error, "credentials could not be checked; starting without them");
                    return Injection::Failed;
                }
            }
        }
        if missing.is_empty() {
            return Injection::Success;
        }
        let restored = crate::credentials::CredentialFiles::from_entries("vault", missing)
            .and_then(|missing| crate::credentials::home_archive(&missing));
        let written = match restored {
            Ok(archive) => write_home(deps, st, archive).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                debug!(agent = %st.record.name, files = files.len(), "credentials restored");
                Injection::Success
            }
            Err(error) => {
                warn!(agent = %st.record.name, %error, "credentials could not be written; starting without them");
                Injection::Failed
            }
        }
    }

    pub(super) async fn write_home_files(
        deps: &AgentDeps,
        st: &mut AgentState,
        files: Vec<HomeFile>,
    ) -> Result<(), FleetError> {
        st.lifecycle.can_configure()?;
        let entries: Vec<(&str, &[u8], u32)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.content.as_slice(), f.mode))
            .collect();
        let archive = spec::archive(&entries)?;
        write_home(deps, st, archive).await
    }

    /// Bring the runtime's configuration files in its state directory up to date: read its
    /// current `settings.json`, merge flotilla's keys into it, and write the files — unless
    /// `settings.json` already holds exactly that and the other files are what this actor last
    /// wrote (an archive write costs the daemon about as much as a third of a container start).
    async fn apply_runtime_files(
        deps: &AgentDeps,
        st: &mut AgentState,
        container: &str,
    ) -> Result<(), FleetError> {
        let state_dir = st.record.runtime.state_dir();
        let current = read_small_file(
            deps,
            container,
            &format!("{HOME}/{state_dir}/{}", runtime_files::SETTINGS),
        )
        .await?;
        let files = runtime_files::state_files(&st.record, current.as_deref());
        if runtime_files::up_to_date(&files, current.as_deref(), st.runtime_files) {
            return Ok(());
        }
        write_files(deps, st, files).await
    }

    /// Write the runtime's configuration files (from [`runtime_files::state_files`]) and note
    /// their digest.
    async fn write_files(
        deps: &AgentDeps,
        st: &mut AgentState,
        files: Vec<runtime_files::StateFile>,
    ) -> Result<(), FleetError> {
        let archive = runtime_files::home_archive(st.record.runtime, &files)?;
        write_home(deps, st, archive).await?;
        st.runtime_files = Some(runtime_files::digest(&files));
        Ok(())
    }

    /// A small file of the container's (at most 1 MiB), or `None` if it does not exist.
    async fn read_small_file(
        deps: &AgentDeps,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, FleetError> {
        const MAX: usize = 1024 * 1024;
        let mut stream = deps.runtime.archive(container, path);
        let mut tar = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(RuntimeError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            if tar.len() > MAX + 64 * 1024 {
                return Ok(None);
            }
        }
        Ok(spec::single_file(&tar, MAX as u64))
    }

    /// Write a tar archive into the home directory. Straight into the agent's container when
    /// its workspace is writable; otherwise through a short-lived helper container that mounts
    /// the same volumes read-write, is never started, and is removed at once — so flotilla's
    /// own writes work while the agent itself cannot write. (Docker refuses archive writes to
    /// any path under a read-only mount, even into a writable volume mounted below it.)
    async fn write_home(
        deps: &AgentDeps,
        st: &AgentState,
        archive: bytes::Bytes,
    ) -> Result<(), FleetError> {
        if let (Some(container), false) = (&st.container, st.record.read_only_enabled) {
            match deps
                .runtime
                .put_archive(container, HOME, archive.clone())
                .await
            {
                // A container made while read-only mode was on, not yet recreated since it was
                // turned off (that happens at the next start): write through a helper too.
                Err(e) if e.to_string().contains("read-only") => {}
                written => return Ok(written?),
            }
        }
        let helper = spec::helper_spec(&deps.config, &st.record)?;
        let id = deps.runtime.create_container(&helper).await?;
        let written = deps.runtime.put_archive(&id, HOME, archive).await;
        if let Err(error) = deps.runtime.remove_container(&id).await {
            warn!(agent = %st.record.name, %error, "helper container left behind");
        }
        Ok(written?)
    }

    pub(super) async fn delete(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        st.lifecycle.can_delete()?;
        // Reach Docker before writing anything, so an unreachable daemon fails the delete with
        // no change at all.
        deps.runtime
            .list_containers(labels::AGENT_ID, &st.record.id.to_string())
            .await?;
        // An interrupted create keeps its phase `provisioning`: it is rolled back the same way,
        // and was never shown, so no event announces its end.
        let was_created = st.record.phase != Phase::Provisioning;
        if st.record.phase == Phase::Ready {
            let mut record = st.record.clone();
            record.phase = Phase::Deleting;
            deps.registry.send(SaveAgent { record }).await??;
            st.record.phase = Phase::Deleting;
        }
        st.lifecycle = Lifecycle::Deleting;
        // Who could see it, for the event: the agent and its shares are gone once it is sent.
        let mut audience: Vec<String> = deps
            .access
            .shares_of(st.record.id)
            .into_iter()
            .map(|s| s.email)
            .collect();
        audience.push(st.record.owner.clone());
        remove_everything(deps, st).await?;
        if !was_created {
            info!(agent = %st.record.name, id = %st.record.id, "interrupted create rolled back");
            return Ok(());
        }
        info!(agent = %st.record.name, id = %st.record.id, "agent deleted");
        st.emit(
            "agent_deleted",
            json!({ "owner": st.record.owner, "audience": audience }),
        );
        Ok(())
    }

    /// Re-read the container and give it the agent's current name if it still carries an old
    /// one (a crash between a rename's registry write and its Docker rename), so the old name
    /// is free for another agent at once.
    pub(super) async fn reconcile(deps: &AgentDeps, st: &mut AgentState) -> Result<(), FleetError> {
        if matches!(
            st.lifecycle,
            Lifecycle::Provisioning | Lifecycle::Deleting | Lifecycle::Deleted
        ) {
            return Ok(());
        }
        refresh_or_find(deps, st).await?;
        let Some(id) = st.container.clone() else {
            return Ok(());
        };
        let Some(info) = deps.runtime.inspect_container(&id).await? else {
            return Ok(());
        };
        let wanted = spec::container_name(&st.record.name);
        if info.name != wanted {
            info!(agent = %st.record.name, container = %info.name, "renaming a container left with an old name");
            deps.runtime.rename_container(&id, &wanted).await?;
        }
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
    /// when its volume had to be created. `exclude` leaves one producer's shared folder out (it
    /// is being deleted).
    async fn ensure_container(
        deps: &AgentDeps,
        st: &mut AgentState,
        exclude: Option<AgentId>,
    ) -> Result<String, FleetError> {
        let (spec, producers) = desired_spec(deps, &st.record, exclude).await?;
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
                st.spec_digest = desired;
                st.mounted_producers = spec::consumed_producers(&info);
                return Ok(info.id);
            }
            debug!(agent = %st.record.name, "container is stale, recreating");
            deps.runtime.remove_container(&info.id).await?;
            st.container = None;
        }

        // Volumes are created explicitly, with the agent's labels (Docker would create missing
        // ones unlabelled, and delete finds an agent's volumes by label).
        let labels = spec::object_labels(&deps.config, st.record.id);
        let volume = spec::workspace_volume(st.record.id);
        let fresh = !deps.runtime.volume_exists(&volume).await?;
        if fresh {
            deps.runtime.create_volume(&volume, &labels).await?;
        }
        deps.runtime
            .create_volume(&spec::state_volume(st.record.id), &labels)
            .await?;
        if st.record.expose_enabled {
            deps.runtime
                .create_volume(&spec::shared_volume(st.record.id), &labels)
                .await?;
        }
        if st.record.read_only_enabled && (st.record.expose_enabled || !producers.is_empty()) {
            // Mount points inside a read-only workspace cannot be made by Docker: make them
            // first, through the writable helper.
            let mut folders = Vec::new();
            if st.record.expose_enabled {
                folders.push("shared-out/".to_string());
            }
            if !producers.is_empty() {
                folders.push("shared-in/".to_string());
            }
            folders.extend(producers.iter().map(|p| format!("shared-in/{}/", p.name)));
            let entries: Vec<(&str, &[u8], u32)> = folders
                .iter()
                .map(|f| (f.as_str(), &[][..], 0o755))
                .collect();
            let mut without = st.clone();
            without.container = None;
            write_home(deps, &without, spec::archive(&entries)?).await?;
        }
        let id = deps.runtime.create_container(&spec).await?;
        st.container = Some(id.clone());
        st.spec_digest = desired;
        st.mounted_producers = producers.iter().map(|p| p.id).collect();
        if fresh {
            seed_workspace(deps, st).await?;
        }
        Ok(id)
    }

    /// Write the files a new workspace starts with: its template's files, then the runtime's
    /// instructions file (so explicit instructions win over a template's own file).
    async fn seed_workspace(deps: &AgentDeps, st: &AgentState) -> Result<(), FleetError> {
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
        write_home(deps, st, archive).await
    }
}
