//! The supervisor: spawns one agent actor per agent, spreads them over a small pool of arbiter
//! threads, and owns the agent map (id → actor address).
//!
//! The map is a `DashMap` shared read-only with the [`Fleet`](crate::Fleet) handle, so routing a
//! request to an agent costs no message to the supervisor; only the supervisor inserts and
//! removes entries. It is keyed by the agent's immutable id (names change; the directory maps
//! names to ids), so a rename never has to move an actor.

pub mod messages;

use std::sync::Arc;

use actix::prelude::*;
use dashmap::DashMap;
use tracing::debug;

use crate::agent::{AgentActor, AgentDeps};
use crate::model::AgentId;

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
}

impl Supervisor {
    pub(crate) fn new(agents: AgentMap, deps: AgentDeps, threads: usize) -> Self {
        let arbiters = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        Self {
            agents,
            deps,
            arbiters,
            next: 0,
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
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
        let id = msg.state.record.id;
        let arbiter = &self.arbiters[self.next % self.arbiters.len()];
        self.next = self.next.wrapping_add(1);
        let deps = self.deps.clone();
        let state = msg.state;
        let addr =
            AgentActor::start_in_arbiter(&arbiter.handle(), move |_| AgentActor::new(state, deps));
        self.agents.insert(id, addr.clone());
        MessageResult(addr)
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<AgentActorStopped> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: AgentActorStopped, _: &mut Self::Context) {
        debug!(agent = %msg.id, "agent actor stopped");
        // Only forget the actor that stopped, not a newer one spawned for the same id.
        self.agents.remove_if(&msg.id, |_, addr| *addr == msg.addr);
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
