//! The sharing actor: owns the shares of agents with users (by email) and keeps the
//! [`AccessIndex`] — the in-memory mirror every access check reads — in step with the store.
//!
//! Writes go to the store first and reach the index only once committed, so the index never
//! grants access the store does not record. The index is loaded from the store at start-up.

mod api;
pub mod messages;

use actix::prelude::*;
use chrono::Utc;

use crate::access::{AccessIndex, Share};
use crate::error::FleetError;
use crate::store::Store;

use self::messages::*;

pub struct SharingActor {
    store: Store,
    /// Written only here, after the store has committed.
    index: AccessIndex,
}

impl SharingActor {
    pub(crate) fn new(store: Store, index: AccessIndex) -> Self {
        Self { store, index }
    }
}

impl Actor for SharingActor {
    type Context = Context<Self>;
}

impl Handler<ShareAgent> for SharingActor {
    type Result = AtomicResponse<Self, Result<Share, FleetError>>;

    fn handle(&mut self, msg: ShareAgent, _: &mut Self::Context) -> Self::Result {
        if self.index.is_shared_with(msg.agent_id, &msg.email) {
            return AtomicResponse::new(Box::pin(fut::err(FleetError::Conflict(format!(
                "the agent is already shared with {}",
                msg.email
            )))));
        }
        let share = Share {
            id: uuid::Uuid::now_v7().simple().to_string(),
            agent_id: msg.agent_id,
            email: msg.email,
            shared_by: msg.shared_by,
            created_at: Utc::now(),
        };
        let store = self.store.clone();
        let index = self.index.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.insert_share(&share).await?;
                index.grant(share.clone());
                Ok(share)
            }
            .into_actor(self),
        ))
    }
}

impl Handler<UnshareAgent> for SharingActor {
    type Result = AtomicResponse<Self, Result<Share, FleetError>>;

    fn handle(&mut self, msg: UnshareAgent, _: &mut Self::Context) -> Self::Result {
        let existing = self
            .index
            .shares_of(msg.agent_id)
            .into_iter()
            .find(|s| s.email == msg.email);
        let Some(share) = existing else {
            return AtomicResponse::new(Box::pin(fut::err(FleetError::NotFound {
                kind: "share with",
                name: msg.email,
            })));
        };
        let store = self.store.clone();
        let index = self.index.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.delete_share(&share.id).await?;
                index.revoke(share.agent_id, &share.email);
                Ok(share)
            }
            .into_actor(self),
        ))
    }
}

impl Handler<UnshareEverywhere> for SharingActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: UnshareEverywhere, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let index = self.index.clone();
        AtomicResponse::new(Box::pin(
            async move {
                store.delete_shares_with(&msg.email).await?;
                index.forget_email(&msg.email);
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

impl Handler<AgentRemoved> for SharingActor {
    type Result = ();

    fn handle(&mut self, msg: AgentRemoved, _: &mut Self::Context) {
        self.index.forget_agent(msg.id);
    }
}
