//! The supervisor: spawns one agent actor per agent, spreads them over a small pool of arbiter
//! threads, owns the agent map (id → actor address), and restarts agent actors that crash.
//!
//! **Restarts.** actix does not restart an actor whose handler panics: its task dies, its
//! mailbox closes (callers get `MailboxError::Closed`, which the fleet answers with 503
//! `restarting`), and as the task is dropped the actor's `stopped()` runs with the state it had
//! before the failed operation. An agent actor reports every stop ([`AgentActorStopped`]) and
//! says whether it was deliberate (its agent deleted, its create abandoned) or a crash. For a
//! crash — and, as a backstop, for any address found dead every [`WATCH_EVERY`] — the
//! supervisor reloads the agent's record from the store (through the registry) and its
//! container from Docker (by the agent-id label, whatever its name), spawns a fresh actor with
//! that state in place of the dead one, and has it reconcile (or, for an agent that was being
//! created or deleted, finish the removal). An agent whose row is gone was deleted: its entry is
//! dropped. The operation that crashed is not retried. Other agents, on the same arbiter thread
//! or not, never notice.
//!
//! The map is a `DashMap` shared read-only with the [`Fleet`](crate::Fleet) handle, so routing a
//! request to an agent costs no message to the supervisor; only the supervisor inserts and
//! removes entries. It is keyed by the agent's immutable id (names change; the directory maps
//! names to ids), so a rename never has to move an actor.

pub mod messages;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use dashmap::DashMap;
use tracing::{debug, info, warn};

use crate::agent::lifecycle::Lifecycle;
use crate::agent::messages::{FinishRemoval, Reconcile};
use crate::agent::{AgentActor, AgentDeps, AgentState};
use crate::error::FleetError;
use crate::model::{AgentId, Phase};
use crate::registry::messages::LoadAgent;
use crate::runtime::labels;

use self::messages::*;

/// Agent id → the address of its actor. Written only by the supervisor.
pub type AgentMap = Arc<DashMap<AgentId, Addr<AgentActor>>>;

pub struct Supervisor {
    agents: AgentMap,
    deps: AgentDeps,
    /// Threads agent actors run on. Agent actors spend their time awaiting Docker, but the
    /// occasional CPU work (archives, JSON) should not stall every agent on one thread.
    arbiters: Vec<Arbiter>,
    next: usize,
    /// Agents whose crashed actor is being reloaded right now (so a slow reload is not started
    /// twice).
    restarting: HashSet<AgentId>,
    /// The server is stopping: actors that stop now are not restarted.
    shutting_down: bool,
}

/// How often the supervisor looks for agent actors that died without stopping (a panic).
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

impl Supervisor {
    pub(crate) fn new(agents: AgentMap, deps: AgentDeps, threads: usize) -> Self {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Self {
            agents,
            deps,
            arbiters,
            next: 0,
            restarting: HashSet::new(),
            shutting_down: false,
        }
    }

    /// Start an agent actor on the next arbiter thread and enter it in the map.
    fn spawn(&mut self, state: AgentState) -> Addr<AgentActor> {
        let id = state.record.id;
        let arbiter = &self.arbiters[self.next % self.arbiters.len()];
        self.next = self.next.wrapping_add(1);
        let deps = self.deps.clone();
        let addr =
            AgentActor::start_in_arbiter(&arbiter.handle(), move |_| AgentActor::new(state, deps));
        self.agents.insert(id, addr.clone());
        addr
    }

    /// Restart every agent actor that died without telling (the backstop for
    /// [`AgentActorStopped`] with `crashed`, which is how a panic is normally reported).
    fn restart_dead(&mut self, ctx: &mut Context<Self>) {
        let dead: Vec<(AgentId, Addr<AgentActor>)> = self
            .agents
            .iter()
            .filter(|e| !e.value().connected() && !self.restarting.contains(e.key()))
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        for (id, dead_addr) in dead {
            debug!(agent = %id, "found a dead agent actor");
            self.restart(id, dead_addr, ctx);
        }
    }

    /// Reload agent `id` from the store and Docker and start a fresh actor in place of
    /// `dead_addr`, unless that is already under way or another actor has taken its place.
    fn restart(&mut self, id: AgentId, dead_addr: Addr<AgentActor>, ctx: &mut Context<Self>) {
        if self.shutting_down || !self.restarting.insert(id) {
            return;
        }
        warn!(agent = %id, "agent actor crashed; reloading it from the store and Docker");
        let deps = self.deps.clone();
        ctx.spawn(
            reload(deps, id)
                .into_actor(self)
                .map(move |reloaded, act, _| {
                    act.restarting.remove(&id);
                    if act.shutting_down {
                        return;
                    }
                    // Only replace the actor that died: a newer actor may have taken its place.
                    let current = act.agents.get(&id).map(|e| e.value().clone());
                    if current.as_ref() != Some(&dead_addr) {
                        return;
                    }
                    match reloaded {
                        Ok(Some(state)) => {
                            let unfinished = state.lifecycle == Lifecycle::Deleting;
                            let addr = act.spawn(state);
                            if unfinished {
                                addr.do_send(FinishRemoval);
                            } else {
                                addr.do_send(Reconcile);
                            }
                            info!(agent = %id, "agent actor restarted");
                        }
                        Ok(None) => {
                            act.agents.remove_if(&id, |_, addr| *addr == dead_addr);
                            act.deps.directory.remove(id);
                        }
                        // Tried again at the next look for dead actors.
                        Err(error) => {
                            warn!(agent = %id, %error, "could not reload a crashed agent actor")
                        }
                    }
                }),
        );
    }
}

/// An agent's state rebuilt from its stored record and its container (found by the agent-id
/// label, whatever its name). `None` if the agent no longer exists.
async fn reload(deps: AgentDeps, id: AgentId) -> Result<Option<AgentState>, FleetError> {
    let Some(record) = deps.registry.send(LoadAgent { id }).await?? else {
        return Ok(None);
    };
    if record.phase != Phase::Ready {
        // Interrupted create or delete: finish removing it.
        return Ok(Some(AgentState::new(record, Lifecycle::Deleting)));
    }
    let mut state = AgentState::new(record, Lifecycle::Stopped);
    let found = deps
        .runtime
        .list_containers(labels::AGENT_ID, &id.to_string())
        .await;
    match found {
        Ok(list) => {
            let container = list.into_iter().find(|c| c.label(labels::ROLE).is_none());
            let info = match container {
                Some(c) => deps.runtime.inspect_container(&c.id).await?,
                None => None,
            };
            state.observe(info.as_ref());
        }
        // Docker unreachable: start from the record; the watcher refreshes every agent once
        // the daemon answers again.
        Err(error) => {
            debug!(agent = %id, %error, "docker unavailable while reloading an agent");
            if let Some(view) = deps.directory.get(id) {
                state.container = view.container_id.clone();
                state.started_at = view.started_at;
                state.spec_digest = view.spec_digest.clone();
                state.mounted_producers = view.mounted_producers.clone();
                state.lifecycle = match view.status {
                    crate::model::Status::Running => Lifecycle::Running,
                    crate::model::Status::Paused => Lifecycle::Paused,
                    crate::model::Status::Restarting => Lifecycle::Restarting,
                    _ => Lifecycle::Stopped,
                };
            }
        }
    }
    Ok(Some(state))
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(WATCH_EVERY, |act, ctx| act.restart_dead(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.agents.clear();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

impl Handler<SpawnAgent> for Supervisor {
    type Result = MessageResult<SpawnAgent>;

    fn handle(&mut self, msg: SpawnAgent, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.spawn(msg.state))
    }
}

impl Handler<Draining> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Draining, _: &mut Self::Context) {
        self.shutting_down = true;
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.shutting_down = true;
        ctx.stop();
    }
}

impl Handler<AgentActorStopped> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AgentActorStopped, ctx: &mut Self::Context) {
        let current = self.agents.get(&msg.id).map(|e| e.value().clone());
        // Only the actor that stopped counts, not a newer one spawned for the same id.
        if current.as_ref() != Some(&msg.addr) {
            return;
        }
        if msg.crashed {
            debug!(agent = %msg.id, "an agent actor stopped without being retired");
            self.restart(msg.id, msg.addr, ctx);
        } else {
            debug!(agent = %msg.id, "agent actor stopped");
            self.agents.remove(&msg.id);
        }
    }
}

/// Give the supervisor a handle to itself for the agent actors it spawns.
pub(crate) fn start(
    agents: AgentMap,
    deps: impl FnOnce(Addr<Supervisor>) -> AgentDeps,
    threads: usize,
) -> Addr<Supervisor> {
    Supervisor::create(move |ctx| Supervisor::new(agents, deps(ctx.address()), threads))
}
