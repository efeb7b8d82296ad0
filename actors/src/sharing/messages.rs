//! Messages of the sharing actor.

use actix::Message;

use crate::model::AgentId;

/// The agent is gone (its rows, shares included, were removed by the registry in the same
/// transaction as the agent row): forget its shares in the access index.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AgentRemoved {
    pub id: AgentId,
}
