//! Messages of the sharing actor.

use actix::Message;

use crate::access::Share;
use crate::error::FleetError;
use crate::model::AgentId;

/// Share an agent with a user by email (already validated, lower-cased). `Conflict` if it is
/// already shared with them.
#[derive(Debug, Message)]
#[rtype(result = "Result<Share, FleetError>")]
pub struct ShareAgent {
    pub agent_id: AgentId,
    pub email: String,
    pub shared_by: String,
}

/// Remove a share. `NotFound` if the agent is not shared with that email.
#[derive(Debug, Message)]
#[rtype(result = "Result<Share, FleetError>")]
pub struct UnshareAgent {
    pub agent_id: AgentId,
    pub email: String,
}

/// Remove every share with `email` (its user is being deleted), in one store statement.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct UnshareEverywhere {
    pub email: String,
}

/// The agent is gone (its rows, shares included, were removed by the registry in the same
/// transaction as the agent row): forget its shares in the access index.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AgentRemoved {
    pub id: AgentId,
}
