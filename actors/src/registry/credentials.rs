//! The registry's credential-vault write: replace (or remove) one agent's sealed vault.
//!
//! The vault arrives already sealed (encrypted to the server's identity by the agent's actor,
//! on a blocking thread), so this handler is a single store write and never sees a secret.

use actix::prelude::*;

use super::RegistryActor;
use super::messages::SaveVault;
use crate::error::FleetError;

impl Handler<SaveVault> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), FleetError>>;

    fn handle(&mut self, msg: SaveVault, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.save_vault(msg.agent, msg.vault.as_ref()).await }.into_actor(self),
        ))
    }
}
