//! The `Fleet` handle: the one interface HTTP handlers (and benchmarks, and tests) use.
//!
//! It is a cheap clone (`Arc` inside). Reads — listing, getting, access checks, account lookups —
//! are answered from the published snapshots with no message and no I/O. Commands are checked
//! against the access table, validated, then sent to the actor that owns them, bounded by the
//! configured actor timeout. Preconditions are written on each method; none of them parse HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use dashmap::DashMap;
use tracing::{info, warn};

use crate::access::{AccessIndex, AccessLevel, Action, Share};
use crate::accounts::Accounts;
use crate::agent::lifecycle::Lifecycle;
use crate::agent::messages::*;
use crate::agent::{AgentActor, AgentDeps, AgentState};
use crate::config::FleetConfig;
use crate::directory::Directory;
use crate::error::FleetError;
use crate::events::EventBus;
use crate::model::*;
use crate::registry::RegistryActor;
use crate::registry::messages::*;
use crate::runtime::{ContainerInfo, ContainerRuntime, HostInfo, labels};
use crate::sharing::SharingActor;
use crate::store::Store;
use crate::supervisor::messages::{Draining, Shutdown, SpawnAgent};
use crate::supervisor::{self, AgentMap, Supervisor};
use crate::templates::TemplateCatalog;
use crate::validate;

/// A request to create an agent, as the client sent it (validated by [`Fleet::create_agent`]).
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    pub name: String,
    pub agent_type: Option<String>,
    pub template: Option<String>,
    pub runtime: Option<String>,
    pub runtime_model: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub custom_instructions: Option<String>,
    pub github_repo: Option<String>,
    pub tags: Vec<String>,
    /// Admin only: a system agent cannot be deleted or renamed.
    pub system: bool,
}

/// An agent as one caller sees it.
#[derive(Debug, Clone)]
pub struct Visible {
    pub view: Arc<AgentView>,
    pub level: AccessLevel,
}

/// See [`Fleet::list_version`]: equal versions mean an equal list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListVersion {
    agents: u64,
    shares: u64,
}

/// A container carrying this instance's label but no agent in the registry. Reported to
/// admins, never removed automatically.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub container_id: String,
    pub name: String,
    pub agent_id: Option<String>,
}

/// The handle. Feature modules (`files`, `stats`, ...) add their own `impl Fleet` blocks next to
/// their code; this file holds start-up, accounts and the agent lifecycle.
#[derive(Clone)]
pub struct Fleet {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Arc<FleetConfig>,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) registry: Addr<RegistryActor>,
    pub(crate) sharing: Addr<SharingActor>,
    pub(crate) supervisor: Addr<Supervisor>,
    pub(crate) agents: AgentMap,
    pub(crate) directory: Directory,
    pub(crate) access: AccessIndex,
    pub(crate) accounts: Accounts,
    pub(crate) events: EventBus,
    pub(crate) host: Option<HostInfo>,
    pub(crate) orphans: Vec<Orphan>,
    /// Follows Docker's event stream; set once the fleet is built.
    pub(crate) watcher: std::sync::OnceLock<crate::watcher::Watcher>,
    /// The stats sampler; stopped first by [`Fleet::shutdown`].
    pub(crate) stats: crate::stats::Sampler,
    /// The Prometheus registry (see [`crate::metrics`]).
    pub(crate) metrics: crate::metrics::Metrics,
    /// Transcript figures for context-stats (see [`crate::context`]).
    pub(crate) context: crate::context::ContextCache,
    pub(crate) templates: Arc<TemplateCatalog>,
    /// For reads of large values (avatar images) that the snapshots do not hold. All writes go
    /// through the registry and sharing actors.
    pub(crate) store: Store,
    /// The SSH gateway; stopped first by [`Fleet::shutdown`].
    pub(crate) ssh: crate::ssh::Gateway,
    /// The credential vault key (loaded from the data dir) and sealed-vault reads.
    pub(crate) vault: crate::credentials::Vault,
}

/// Agent actors are spread over `min(cores, AGENT_THREADS)` arbiter threads.
const AGENT_THREADS: usize = 4;

/// Largest `custom_instructions` accepted.
const MAX_INSTRUCTIONS: usize = 64 * 1024;

impl Fleet {
    /// Open the store, load users, shares and agents, start the actors, and reconcile every
    /// agent with Docker. Must run inside an actix `System`.
    pub async fn start(
        config: FleetConfig,
        runtime: Arc<dyn ContainerRuntime>,
    ) -> Result<Self, FleetError> {
        let config = Arc::new(config);
        let store = Store::open(&config.db_url).await?;
        let records = store.load_agents().await?;

        let accounts = Accounts::new();
        for user in store.load_users().await? {
            accounts.put_user(user);
        }
        let now = Utc::now().timestamp();
        for (jti, exp) in store.load_revoked().await? {
            if exp >= now {
                accounts.revoke(jti, exp);
            }
        }
        let access = AccessIndex::new();
        for share in store.load_shares().await? {
            access.grant(share);
        }
        let host = match runtime.host_info().await {
            Ok(host) => Some(host),
            Err(error) => {
                warn!(%error, "docker host info unavailable; resource limits checked loosely");
                None
            }
        };

        let templates_dir = config.templates_dir.clone();
        let templates = Arc::new(
            tokio::task::spawn_blocking(move || TemplateCatalog::load(&templates_dir))
                .await
                .map_err(|e| FleetError::Internal(format!("loading templates: {e}")))?,
        );
        let directory = Directory::new();
        let events = EventBus::new();
        let ssh =
            crate::ssh::Gateway::start(&config, &store, runtime.clone(), directory.clone()).await?;
        let registry = RegistryActor::new(
            store.clone(),
            accounts.clone(),
            config.ssh_ports.clone(),
            &records,
        )
        .with_ssh_keys(ssh.keys().clone())
        .start();
        let sharing = SharingActor::new(store.clone(), access.clone()).start();
        let vault = crate::credentials::Vault::open(&config.data_dir, store.clone()).await?;
        let agents: AgentMap = Arc::new(DashMap::new());
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(AGENT_THREADS);
        let deps = {
            let (runtime, registry, sharing) = (runtime.clone(), registry.clone(), sharing.clone());
            let (directory, events, config) = (directory.clone(), events.clone(), config.clone());
            let (templates, access, accounts) =
                (templates.clone(), access.clone(), accounts.clone());
            let vault = vault.clone();
            move |supervisor| AgentDeps {
                runtime,
                registry,
                sharing,
                supervisor,
                directory,
                events,
                config,
                templates,
                access,
                accounts,
                vault,
            }
        };
        let supervisor = supervisor::start(agents.clone(), deps, threads);

        let stats = crate::stats::Sampler::start(&config, runtime.clone(), directory.clone());
        let metrics = crate::metrics::Metrics::new(directory.clone(), stats.board().clone())?;
        let mut inner = Inner {
            config,
            runtime,
            registry,
            sharing,
            supervisor,
            agents,
            directory,
            access,
            accounts,
            events,
            host,
            orphans: Vec::new(),
            watcher: std::sync::OnceLock::new(),
            stats,
            metrics,
            context: crate::context::ContextCache::new(),
            templates,
            store,
            ssh,
            vault,
        };
        inner.orphans = recover(&inner, records).await?;
        // Listen for agents that still have valid SSH keys (their snapshots are published now).
        if let Err(error) = inner.ssh.sync(None).await {
            warn!(%error, "SSH gateway could not start listening");
        }
        let fleet = Self {
            inner: Arc::new(inner),
        };
        let _ = fleet
            .inner
            .watcher
            .set(crate::watcher::Watcher::start(fleet.clone()));
        Ok(fleet)
    }

    /// Every agent actor's address.
    pub(crate) fn agent_addresses(&self) -> Vec<Addr<AgentActor>> {
        self.inner
            .agents
            .iter()
            .map(|e| e.value().clone())
            .collect()
    }

    /// The published view of one agent, by id (no access check: for routing events).
    pub fn agent_view(&self, id: AgentId) -> Option<Arc<AgentView>> {
        self.inner.directory.get(id)
    }

    /// One agent actor's address.
    pub(crate) fn agent_address(&self, id: AgentId) -> Option<Addr<AgentActor>> {
        self.inner.agents.get(&id).map(|e| e.value().clone())
    }

    /// Stop the SSH gateway (ending its sessions) and the stats sampler, then every agent actor
    /// (after the HTTP server has drained). Operations already running
    /// inside an actor are cut at their next await point; none is started afterwards. The store
    /// needs no flush: every commit is durable when acknowledged.
    pub async fn shutdown(&self) {
        // First, so that actors stopping while everything winds down are not restarted.
        if let Err(error) = self.inner.supervisor.send(Draining).await {
            warn!(%error, "supervisor already gone at shutdown");
        }
        if let Some(watcher) = self.inner.watcher.get() {
            watcher.shutdown();
        }
        self.inner.ssh.shutdown().await;
        self.inner.stats.shutdown().await;
        if let Err(error) = self.inner.supervisor.send(Shutdown).await {
            warn!(%error, "supervisor already gone at shutdown");
        }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.inner.config
    }

    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    pub fn access(&self) -> &AccessIndex {
        &self.inner.access
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.inner.runtime
    }

    // ---- users --------------------------------------------------------------------------

    /// Create a user. `Conflict` if the username exists. The password hash is made by the caller.
    pub async fn create_user(&self, user: User) -> Result<(), FleetError> {
        self.inner
            .registry
            .send(CreateUser { user })
            .timeout(self.inner.config.actor_timeout)
            .await?
    }

    /// Create or replace a user (the start-up admin; password changes bump `token_version`).
    pub async fn save_user(&self, user: User) -> Result<(), FleetError> {
        self.inner
            .registry
            .send(SaveUser { user })
            .timeout(self.inner.config.actor_timeout)
            .await?
    }

    /// Revoke one token (logout) until it expires.
    pub async fn revoke_token(&self, jti: String, expires_at: i64) -> Result<(), FleetError> {
        self.inner
            .registry
            .send(RevokeToken { jti, expires_at })
            .timeout(self.inner.config.actor_timeout)
            .await?
    }

    // ---- agents: reads ------------------------------------------------------------------

    /// The version of everything [`Fleet::list_agents`] reads: the agents' snapshots and the
    /// shares. Read it *before* listing; while it stays the same, so does the list (for the same
    /// caller and tags).
    pub fn list_version(&self) -> ListVersion {
        ListVersion {
            agents: self.inner.directory.version(),
            shares: self.inner.access.version(),
        }
    }

    /// Every agent `who` can see, by name, keeping those with any of `tags` (when given).
    pub fn list_agents(&self, who: &Principal, tags: &[String]) -> Vec<Visible> {
        let mut out: Vec<Visible> = self
            .inner
            .directory
            .all()
            .into_iter()
            .filter(|view| tags.is_empty() || view.record.tags.iter().any(|t| tags.contains(t)))
            .filter_map(|view| {
                let level = self.inner.access.level(who, &view)?;
                Some(Visible { view, level })
            })
            .collect();
        out.sort_by(|a, b| a.view.record.name.cmp(&b.view.record.name));
        out
    }

    /// The agent called `name`, if `who` may do `action` to it: `NotFound` when invisible,
    /// `Forbidden` when visible but not allowed.
    pub fn agent(
        &self,
        who: &Principal,
        name: &str,
        action: Action,
    ) -> Result<Visible, FleetError> {
        let view = self
            .inner
            .directory
            .by_name(name)
            .ok_or_else(|| FleetError::agent_not_found(name))?;
        let level = self.inner.access.authorize(who, &view, action)?;
        Ok(Visible { view, level })
    }

    /// The agent's shares, newest first.
    pub fn shares_of(&self, agent: AgentId) -> Vec<Share> {
        self.inner.access.shares_of(agent)
    }

    /// Containers of this instance that belong to no agent (admin only).
    pub fn orphans(&self, who: &Principal) -> Result<Vec<Orphan>, FleetError> {
        if !who.is_admin() {
            return Err(FleetError::Forbidden(
                "only an admin may list orphans".into(),
            ));
        }
        Ok(self.inner.orphans.clone())
    }

    // ---- agents: commands ---------------------------------------------------------------

    /// Create and start an agent owned by `who`. Registry row first; on any failure everything
    /// made is removed (container, volume, row, port lease) before the error is returned.
    pub async fn create_agent(
        &self,
        who: &Principal,
        request: NewAgent,
    ) -> Result<Arc<AgentView>, FleetError> {
        let draft = self.validate_new_agent(who, request)?;
        // Detached: once the row is reserved, the create runs to its end (success or full
        // rollback) even if the caller goes away.
        let fleet = self.clone();
        actix::spawn(async move { fleet.provision(draft).await })
            .await
            .map_err(|e| FleetError::Internal(format!("create task failed: {e}")))?
    }

    async fn provision(&self, draft: AgentRecord) -> Result<Arc<AgentView>, FleetError> {
        let id = draft.id;
        let name = draft.name.clone();
        // Reach Docker before writing anything, so an unreachable daemon fails the create with
        // no row, no lease and nothing to roll back (503).
        self.inner
            .runtime
            .list_containers(labels::AGENT_ID, &id.to_string())
            .await?;
        let record = self
            .inner
            .registry
            .send(ReserveAgent { draft })
            .timeout(self.inner.config.actor_timeout)
            .await??;
        let addr = self
            .inner
            .supervisor
            .send(SpawnAgent {
                state: AgentState::new(record, Lifecycle::Provisioning),
            })
            .await?;
        if let Err(e) = self.ask(&name, &addr, Provision).await {
            // The actor has rolled back (or is still finishing the rollback); retire it either
            // way. An actor that crashed is reloaded by the supervisor, which finishes the
            // rollback: to the caller that is 503, not "not found".
            addr.do_send(RetireNow);
            return Err(match e {
                FleetError::NotFound { .. } => FleetError::ActorGone,
                e => e,
            });
        }
        self.inner
            .directory
            .get(id)
            .ok_or_else(|| FleetError::Internal("created agent has no snapshot".into()))
    }

    /// Start the agent (owner, admin or shared user). Idempotent.
    pub async fn start_agent(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<StartOutcome, FleetError> {
        let addr = self.addr_for(who, name, Action::Operate)?;
        self.ask(name, &addr, StartAgent).await
    }

    /// Stop the agent (owner, admin or shared user). Idempotent.
    pub async fn stop_agent(&self, who: &Principal, name: &str) -> Result<(), FleetError> {
        let addr = self.addr_for(who, name, Action::Operate)?;
        self.ask(name, &addr, StopAgent).await
    }

    /// Rename the agent (owner or admin; never a system agent). `Conflict` if the name is taken.
    pub async fn rename_agent(
        &self,
        who: &Principal,
        name: &str,
        new_name: &str,
    ) -> Result<Arc<AgentView>, FleetError> {
        let addr = self.addr_for(who, name, Action::Rename)?;
        validate::agent_name(new_name).map_err(|r| FleetError::invalid("new_name", r))?;
        self.ask(
            name,
            &addr,
            RenameAgent {
                new_name: new_name.to_string(),
            },
        )
        .await?;
        self.inner
            .directory
            .by_name(new_name)
            .ok_or_else(|| FleetError::agent_not_found(new_name))
    }

    /// Delete the agent and everything it owns (owner or admin; never a system agent).
    pub async fn delete_agent(&self, who: &Principal, name: &str) -> Result<(), FleetError> {
        let addr = self.addr_for(who, name, Action::Delete)?;
        if let Some(view) = self.inner.directory.by_name(name) {
            self.detach_from_consumers(view.record.id).await?;
        }
        self.ask(name, &addr, DeleteAgent).await
    }

    pub(crate) fn addr_for(
        &self,
        who: &Principal,
        name: &str,
        action: Action,
    ) -> Result<Addr<AgentActor>, FleetError> {
        let visible = self.agent(who, name, action)?;
        self.inner
            .agents
            .get(&visible.view.record.id)
            .map(|a| a.value().clone())
            .ok_or(FleetError::ActorGone)
    }

    /// Send a command to an agent actor and wait (bounded) for its answer.
    ///
    /// The command runs on a task of its own: once accepted it completes even if the caller
    /// goes away (a client disconnecting mid-create must not strand a half-made agent). An actor
    /// that is gone, or that has just deleted its agent, means the agent no longer exists.
    pub(crate) async fn ask<M, T>(
        &self,
        name: &str,
        addr: &Addr<AgentActor>,
        msg: M,
    ) -> Result<T, FleetError>
    where
        M: Message<Result = Result<T, FleetError>> + Send + 'static,
        T: Send + 'static,
        AgentActor: Handler<M>,
    {
        // Counted in flight until the actor answers, and by kind and outcome once it has, on
        // the command's own task: a caller that goes away does not uncount it.
        let metrics = self.inner.metrics.clone();
        let kind = crate::metrics::operation_kind::<M>();
        let in_flight = metrics.command_in_flight();
        let name = name.to_string();
        let directory = self.inner.directory.clone();
        let request = addr.send(msg).timeout(self.inner.config.actor_timeout);
        actix::spawn(async move {
            let answer = request.await;
            drop(in_flight);
            let result = match answer {
                Ok(Err(FleetError::IllegalState(e))) if e.state == Lifecycle::Deleted => {
                    Err(FleetError::agent_not_found(name))
                }
                Ok(result) => result,
                // Closed with the agent still published: its actor crashed, and the supervisor
                // is restarting it (503, try again). Unpublished: it was deleted.
                Err(actix::MailboxError::Closed) if directory.by_name(&name).is_some() => {
                    Err(FleetError::ActorGone)
                }
                Err(actix::MailboxError::Closed) => Err(FleetError::agent_not_found(name)),
                Err(e) => Err(e.into()),
            };
            metrics.count_operation(&kind, crate::metrics::outcome(&result));
            result
        })
        .await
        .map_err(|e| FleetError::Internal(format!("command task failed: {e}")))?
    }

    fn validate_new_agent(&self, who: &Principal, r: NewAgent) -> Result<AgentRecord, FleetError> {
        let invalid = FleetError::invalid;
        validate::agent_name(&r.name).map_err(|e| invalid("name", e))?;
        if r.system && !who.is_admin() {
            return Err(FleetError::Forbidden(
                "only an admin may create system agents".into(),
            ));
        }
        let template = match &r.template {
            None => None,
            Some(name) => Some(
                self.inner
                    .templates
                    .get(name)
                    .ok_or_else(|| invalid("template", format!("unknown template '{name}'")))?,
            ),
        };
        let meta = template.map(|t| &t.meta);
        // Explicit request fields win over the template's defaults.
        let agent_type = r
            .agent_type
            .or_else(|| meta.and_then(|m| m.agent_type.clone()))
            .unwrap_or_else(|| "business-assistant".into());
        validate::slug(&agent_type).map_err(|e| invalid("type", e))?;
        let runtime = match r.runtime.or_else(|| meta.and_then(|m| m.runtime.clone())) {
            None => AgentRuntime::ClaudeCode,
            Some(s) => s.parse().map_err(|()| {
                invalid(
                    "runtime",
                    format!("'{s}' is not one of claude-code, gemini-cli"),
                )
            })?,
        };
        let runtime_model = r
            .runtime_model
            .or_else(|| meta.and_then(|m| m.runtime_model.clone()));
        if let Some(m) = &runtime_model {
            validate::text(m, 128).map_err(|e| invalid("runtime_model", e))?;
        }
        let defaults = meta.map(|m| m.resources()).unwrap_or_default();
        let resources = Resources {
            cpu: r.cpu.unwrap_or(defaults.cpu),
            memory: r.memory.unwrap_or(defaults.memory),
        };
        let custom_instructions = r
            .custom_instructions
            .or_else(|| meta.and_then(|m| m.instructions.clone()));
        let raw_tags = if r.tags.is_empty() {
            meta.map(|m| m.tags.clone()).unwrap_or_default()
        } else {
            r.tags
        };
        let nano = resources
            .nano_cpus()
            .map_err(|e| invalid("resources.cpu", e))?;
        let bytes = resources
            .memory_bytes()
            .map_err(|e| invalid("resources.memory", e))?;
        if let Some(host) = self.inner.host {
            if nano > host.cpus * 1_000_000_000 {
                return Err(invalid(
                    "resources.cpu",
                    format!("this host has only {} CPUs", host.cpus),
                ));
            }
            if bytes > host.memory_bytes {
                return Err(invalid(
                    "resources.memory",
                    format!("this host has only {} bytes of memory", host.memory_bytes),
                ));
            }
        }
        if let Some(text) = &custom_instructions
            && text.len() > MAX_INSTRUCTIONS
        {
            return Err(invalid(
                "custom_instructions",
                format!("must be at most {MAX_INSTRUCTIONS} bytes"),
            ));
        }
        if let Some(repo) = &r.github_repo {
            validate::github_repo(repo).map_err(|e| invalid("github_repo", e))?;
        }
        let tags = validate::tags(&raw_tags).map_err(|e| invalid("tags", e))?;
        Ok(AgentRecord {
            id: AgentId::new(),
            name: r.name,
            owner: who.username.clone(),
            agent_type,
            runtime,
            runtime_model,
            template: r.template,
            resources,
            custom_instructions,
            github_repo: r.github_repo,
            tags,
            system: r.system,
            ssh_port: 0,
            autonomy_enabled: false,
            read_only_enabled: false,
            avatar_version: 0,
            read_only_patterns: Default::default(),
            execution_timeout_seconds: crate::model::DEFAULT_EXECUTION_TIMEOUT,
            expose_enabled: false,
            consume_enabled: false,
            created: Utc::now(),
            phase: Phase::Provisioning,
        })
    }
}

/// Ask an agent actor whose create failed to stop (it is left with no agent to manage). An
/// actor whose create did complete after all (the caller timed out first) keeps running.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RetireNow;

impl Handler<RetireNow> for AgentActor {
    type Result = ();
    fn handle(&mut self, _: RetireNow, ctx: &mut Self::Context) {
        if self.is_unprovisioned() {
            self.retire(ctx);
        }
    }
}

/// Rebuild an actor for every stored agent, matching each with its container (found by the
/// agent-id label, one list call for the whole instance). Interrupted creates are rolled back
/// and interrupted deletes finished. Returns the containers of this instance that belong to no
/// agent.
async fn recover(inner: &Inner, records: Vec<AgentRecord>) -> Result<Vec<Orphan>, FleetError> {
    let containers = match inner
        .runtime
        .list_containers(labels::INSTANCE, &inner.config.instance)
        .await
    {
        Ok(list) => list,
        Err(error) => {
            warn!(%error, "docker unavailable at start-up; agents start as stopped and are repaired on their next start");
            Vec::new()
        }
    };
    let mut by_agent: HashMap<String, ContainerInfo> = HashMap::new();
    let mut orphans = Vec::new();
    let known: std::collections::HashSet<String> =
        records.iter().map(|r| r.id.to_string()).collect();
    for container in containers {
        if container.label(labels::ROLE).is_some() {
            // A helper container left behind by a crash: never started, always disposable.
            if let Err(error) = inner.runtime.remove_container(&container.id).await {
                warn!(%error, container = %container.name, "could not remove a helper container");
            }
            continue;
        }
        match container.label(labels::AGENT_ID).map(str::to_string) {
            Some(id) if known.contains(&id) => {
                by_agent.entry(id).or_insert(container);
            }
            agent_id => {
                warn!(container = %container.name, "container of this instance has no agent");
                orphans.push(Orphan {
                    container_id: container.id.clone(),
                    name: container.name.clone(),
                    agent_id,
                });
            }
        }
    }

    let mut unfinished = Vec::new();
    let total = records.len();
    let mut misnamed = Vec::new();
    for record in records {
        let phase = record.phase;
        let container = by_agent.remove(&record.id.to_string());
        let lifecycle = match phase {
            Phase::Ready => Lifecycle::Stopped,
            Phase::Provisioning | Phase::Deleting => Lifecycle::Deleting,
        };
        // A container still named after an old name (the server died between a rename's
        // registry write and its Docker rename) is renamed before serving.
        let wrong_name = container
            .as_ref()
            .is_some_and(|c| c.name != crate::agent::spec::container_name(&record.name));
        let addr = inner
            .supervisor
            .send(SpawnAgent {
                state: AgentState::new(record, lifecycle),
            })
            .await?;
        match phase {
            Phase::Ready => {
                addr.send(ContainerObserved { container }).await?;
                if wrong_name {
                    misnamed.push(addr);
                }
            }
            Phase::Provisioning | Phase::Deleting => unfinished.push(addr),
        }
    }
    for addr in misnamed {
        match addr.send(Reconcile).await {
            Ok(Ok(())) => info!("renamed a container left with an old name"),
            Ok(Err(error)) => warn!(%error, "could not rename a container left with an old name"),
            Err(error) => warn!(%error, "could not rename a container left with an old name"),
        }
    }
    for addr in unfinished {
        match addr.send(DeleteAgent).await {
            Ok(Ok(())) => info!("finished an interrupted create or delete"),
            Ok(Err(error)) => warn!(%error, "could not finish an interrupted create or delete"),
            Err(error) => warn!(%error, "could not finish an interrupted create or delete"),
        }
    }
    info!(agents = total, orphans = orphans.len(), "fleet recovered");
    Ok(orphans)
}
