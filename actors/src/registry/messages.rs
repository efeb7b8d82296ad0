//! Messages of the registry actor: every write to agents, users, SSH port leases and revoked
//! tokens. Reads never come here; they are answered from the directory and accounts snapshots
//! (the one exception is [`LoadAgent`]: the supervisor reloading a crashed agent actor).

use actix::Message;

use crate::error::FleetError;
use crate::model::{AgentId, AgentRecord, User};

/// Reserve a new agent: check the name is free, lease an SSH port, and store the row in phase
/// `Provisioning`, all in one transaction. Replies with the record as stored (port filled in).
#[derive(Debug, Message)]
#[rtype(result = "Result<AgentRecord, FleetError>")]
pub struct ReserveAgent {
    pub draft: AgentRecord,
}

/// Store the agent's record as it now is (rename, phase change, configuration). A name taken by
/// another agent is a `Conflict` and nothing is written.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct SaveAgent {
    pub record: AgentRecord,
}

/// Remove the agent's row, its SSH port lease and its shares, in one transaction.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RemoveAgent {
    pub id: AgentId,
}

/// Read one agent's row as stored (the supervisor reloads a crashed agent actor from it).
/// `None` if the agent no longer exists.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<AgentRecord>, FleetError>")]
pub struct LoadAgent {
    pub id: AgentId,
}

/// Store an uploaded avatar together with the record carrying its new version.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct SaveAvatar {
    pub record: AgentRecord,
    pub content_type: String,
    pub data: bytes::Bytes,
}

/// Create a user; `Conflict` if the username exists.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct CreateUser {
    pub user: User,
}

/// Create or replace a user (start-up admin, password changes).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct SaveUser {
    pub user: User,
}

/// Replace a user's password hash and bump their token version (revoking every token issued
/// before). `NotFound` if there is no such user.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct SetPassword {
    pub username: String,
    pub password_hash: String,
}

/// Delete a user. Their tokens are refused from then on (the user no longer exists).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RemoveUser {
    pub username: String,
}

/// Revoke one token until its own expiry.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RevokeToken {
    pub jti: String,
    pub expires_at: i64,
}

/// Replace an agent's sealed credential vault with `vault` (`None`: remove it). Sent only by the
/// agent's own actor, so an agent's vault changes one write at a time.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct SaveVault {
    pub agent: AgentId,
    pub vault: Option<crate::credentials::SealedVault>,
}

/// Store a newly issued SSH access key and add it to the in-memory key mirror; the agent's
/// expired keys are dropped in the same transaction. `Conflict` (nothing written) if the agent
/// already has `max_active` valid keys.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct IssueSshKey {
    pub key: crate::ssh::SshKey,
    pub max_active: usize,
}

/// Remove SSH access keys of an agent from the store and the mirror: the one named by `key_id`,
/// or all of them. Replies with how many of the removed keys were still valid.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, FleetError>")]
pub struct RevokeSshKeys {
    pub agent: AgentId,
    pub key_id: Option<String>,
}
