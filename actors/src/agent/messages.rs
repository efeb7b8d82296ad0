//! Messages of an agent actor. Every one of them runs alone and to completion (the actor handles
//! them as `AtomicResponse`s), in arrival order.

use actix::Message;

use crate::error::FleetError;
use crate::runtime::ContainerInfo;

/// Create the agent's volume and container, seed its workspace and start it. On any failure,
/// remove everything made so far, including the registry row and port lease.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct Provision;

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyRunning,
}

/// Start the agent, (re)creating its container first if it is missing or stale.
#[derive(Debug, Message)]
#[rtype(result = "Result<StartOutcome, FleetError>")]
pub struct StartAgent;

/// Stop the agent (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct StopAgent;

/// Rename the agent: registry first (uniqueness), then the container. Volumes are keyed by id and
/// do not move.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RenameAgent {
    pub new_name: String,
}

/// Delete the agent: container, volumes, rows, lease and shares. Also finishes an interrupted
/// create or delete found at start-up.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct DeleteAgent;

/// Replace the agent's avatar with an already validated image; replies with the new version.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, FleetError>")]
pub struct SetAvatar {
    pub content_type: String,
    pub data: bytes::Bytes,
}

/// What recovery found in Docker for this agent (`None`: no container carries its id).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ContainerObserved {
    pub container: Option<ContainerInfo>,
}
