//! The registry actor: the single writer of agents, users, SSH port leases and revoked tokens in
//! the store.
//!
//! Its messages run one at a time (`AtomicResponse`), so "is this name free, which port is
//! next" and the insert that follows are one indivisible step even without relying on the
//! database's unique indexes (which are there too, as the backstop). After each committed write
//! it updates the in-memory [`Accounts`] mirror (and, for SSH access keys, the gateway's
//! `SshKeys` mirror: `ssh_keys.rs`); agent views are published by the agent actors themselves.
//! Reads never come here.

mod credentials;
pub mod messages;
mod ssh_keys;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use actix::prelude::*;
use tracing::warn;

use crate::accounts::Accounts;
use crate::error::FleetError;
use crate::model::{AgentId, AgentRecord, Phase};
use crate::store::Store;

use self::messages::*;

/// How often expired token revocations are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub struct RegistryActor {
    store: Store,
    accounts: Accounts,
    ports: RangeInclusive<u16>,
    /// Leased SSH ports → the agent holding each. Mirrors the `port_lease` table; a port is
    /// entered here before its insert starts (so no concurrent reservation can pick it) and
    /// removed if the insert fails.
    leased: BTreeMap<u16, AgentId>,
    /// Mirror of the `ssh_key` table, updated after each committed write (see `ssh_keys.rs`).
    ssh_keys: crate::ssh::SshKeys,
}

impl RegistryActor {
    pub(crate) fn new(
        store: Store,
        accounts: Accounts,
        ports: RangeInclusive<u16>,
        agents: &[AgentRecord],
    ) -> Self {
        let leased = agents.iter().map(|a| (a.ssh_port, a.id)).collect();
        Self {
            store,
            accounts,
            ports,
            leased,
            ssh_keys: crate::ssh::SshKeys::default(),
        }
    }

    /// Keep `keys` (the mirror the SSH gateway authenticates against) in step with the store.
    pub(crate) fn with_ssh_keys(mut self, keys: crate::ssh::SshKeys) -> Self {
        self.ssh_keys = keys;
        self
    }

    fn free_port(&self) -> Option<u16> {
        self.ports.clone().find(|p| !self.leased.contains_key(p))
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        ctx.run_interval(PRUNE_EVERY, |act, ctx| {
            let now = chrono::Utc::now().timestamp();
            act.accounts.prune_revoked(now);
            let store = act.store.clone();
            ctx.spawn(
                async move {
                    if let Err(error) = store.prune_revoked(now).await {
                        warn!(%error, "pruning revoked tokens failed");
                    }
                }
                .into_actor(act),
            );
        });
    }
}

impl Handler<ReserveAgent> for RegistryActor {
    type Result = AtomicResponse<Self, Result<AgentRecord, FleetError>>;

    fn handle(&mut self, msg: ReserveAgent, _: &mut Self::Context) -> Self::Result {
        let mut record = msg.draft;
        let Some(port) = self.free_port() else {
            return AtomicResponse::new(Box::pin(fut::err(FleetError::PortsExhausted)));
        };
        record.ssh_port = port;
        record.phase = Phase::Provisioning;
        self.leased.insert(port, record.id);
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let result = store.insert_agent(&record).await;
                result.map(|()| record)
            }
            .into_actor(self)
            .map(move |result, act, _| {
                if result.is_err() {
                    act.leased.remove(&port);
                }
                result
            }),
        ))
    }
}

impl Handler<SaveAgent> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: SaveAgent, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.update_agent(&msg.record).await }.into_actor(self),
        ))
    }
}

impl Handler<LoadAgent> for RegistryActor {
    type Result = AtomicResponse<Self, Result<Option<AgentRecord>, FleetError>>;

    fn handle(&mut self, msg: LoadAgent, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.load_agent(msg.id).await }.into_actor(self),
        ))
    }
}

impl Handler<SaveAvatar> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: SaveAvatar, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .save_avatar(&msg.record, &msg.content_type, msg.data)
                    .await
            }
            .into_actor(self),
        ))
    }
}

impl Handler<RemoveAgent> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: RemoveAgent, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let id = msg.id;
        AtomicResponse::new(Box::pin(
            async move { store.delete_agent(id).await }
                .into_actor(self)
                .map(move |result, act, _| {
                    if result.is_ok() {
                        act.leased.retain(|_, holder| *holder != id);
                        // The transaction removed the agent's SSH keys too.
                        act.ssh_keys.remove(id, None, chrono::Utc::now());
                    }
                    result
                }),
        ))
    }
}

impl Handler<CreateUser> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: CreateUser, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let accounts = self.accounts.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.insert_user(&msg.user).await?;
                accounts.put_user(msg.user);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<SaveUser> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: SaveUser, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let accounts = self.accounts.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.upsert_user(&msg.user).await?;
                accounts.put_user(msg.user);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<SetPassword> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: SetPassword, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let accounts = self.accounts.clone();
        AtomicResponse::new(Box::pin(
            async move {
                // Read and bump inside this one registry step: concurrent changes cannot both
                // write the same version.
                let current = accounts
                    .user(&msg.username)
                    .ok_or_else(|| FleetError::NotFound {
                        kind: "user",
                        name: msg.username.clone(),
                    })?;
                let user = crate::model::User {
                    password_hash: msg.password_hash,
                    token_version: current.token_version + 1,
                    ..(*current).clone()
                };
                store.upsert_user(&user).await?;
                accounts.put_user(user);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<RemoveUser> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: RemoveUser, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let accounts = self.accounts.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.delete_user(&msg.username).await?;
                accounts.remove_user(&msg.username);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<RevokeToken> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: RevokeToken, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let accounts = self.accounts.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.revoke_token(&msg.jti, msg.expires_at).await?;
                accounts.revoke(msg.jti, msg.expires_at);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}
