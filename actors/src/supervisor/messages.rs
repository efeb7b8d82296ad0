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

/// An agent actor has stopped: on purpose (its agent was deleted, or its create never
/// completed), or because a handler panicked (`crashed`; actix stops an actor whose task
/// panics, running `stopped()` as the task is dropped).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AgentActorStopped {
    pub id: AgentId,
    pub addr: Addr<AgentActor>,
    pub crashed: bool,
}

/// The server is shutting down: from now on an agent actor that stops is not restarted (actors
/// stop as the server's threads wind down, which is no crash).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Draining;

/// Stop every agent actor and the arbiter threads they run on (server shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;
