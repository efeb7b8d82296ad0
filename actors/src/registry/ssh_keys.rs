//! The registry's SSH key writes: issue and revoke access keys.
//!
//! Like every registry write they run one at a time (`AtomicResponse`), so "how many valid keys
//! does this agent have" and the insert that follows are one step. The in-memory
//! [`SshKeys`](crate::ssh::SshKeys) mirror is changed only after the store has committed, so the
//! gateway never lets in a key the store does not have; a revocation is in force for new logins
//! as soon as this actor answers.

use actix::prelude::*;
use chrono::Utc;

use super::RegistryActor;
use super::messages::{IssueSshKey, RevokeSshKeys};
use crate::error::FleetError;

impl Handler<IssueSshKey> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: IssueSshKey, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let active = self.ssh_keys.active(msg.key.agent_id, now).len();
        if active >= msg.max_active {
            return AtomicResponse::new(Box::pin(fut::err(FleetError::Conflict(format!(
                "the agent already has {active} valid SSH keys; revoke them before issuing more"
            )))));
        }
        let store = self.store.clone();
        let mirror = self.ssh_keys.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.insert_ssh_key(&msg.key, now).await?;
                mirror.put(msg.key, now)
            }
            .into_actor(self),
        ))
    }
}

impl Handler<RevokeSshKeys> for RegistryActor {
    type Result = AtomicResponse<Self, Result<usize, FleetError>>;

    fn handle(&mut self, msg: RevokeSshKeys, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let mirror = self.ssh_keys.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .delete_ssh_keys(msg.agent, msg.key_id.as_deref())
                    .await?;
                Ok(mirror.remove(msg.agent, msg.key_id.as_deref(), Utc::now()))
            }
            .into_actor(self),
        ))
    }
}
