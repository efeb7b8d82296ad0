//! Messages of the supervisor.

use actix::{Addr, Message};

use crate::agent::{AgentActor, AgentState};
use crate::model::AgentId;

/// Start an actor for an agent (created now, or rebuilt from the registry at start-up) and
/// register it in the agent map.
#[derive(Debug, Message)]
#[rtype(result = "Addr<AgentActor>")]
pub(crate) struct SpawnAgent {
    pub state: AgentState,
}

/// An agent actor has stopped (its agent was deleted, or it failed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AgentActorStopped {
    pub id: AgentId,
    pub addr: Addr<AgentActor>,
}

/// Stop every agent actor and the arbiter threads they run on (server shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;
