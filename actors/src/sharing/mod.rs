//! The sharing actor: owns the shares of agents with users (by email) and keeps the
//! [`AccessIndex`] — the in-memory mirror every access check reads — in step with the store.
//!
//! Writes go to the store first and reach the index only once committed, so the index never
//! grants access the store does not record. The index is loaded from the store at start-up.

pub mod messages;

use actix::prelude::*;

use crate::access::AccessIndex;
use crate::store::Store;

use self::messages::*;

pub struct SharingActor {
    #[allow(dead_code)] // written by the sharing endpoints
    store: Store,
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

impl Handler<AgentRemoved> for SharingActor {
    type Result = ();

    fn handle(&mut self, msg: AgentRemoved, _: &mut Self::Context) {
        self.index.forget_agent(msg.id);
    }
}
