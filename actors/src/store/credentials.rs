//! The `credential_vault` table (`schema/005_credentials.surql`): one sealed vault per agent.
//!
//! Written only by the registry actor; read by the vault (`crate::credentials`) directly, like
//! avatars. The row is keyed by the agent's id, so [`Store::delete_agent`] removes it in the
//! agent-delete transaction. What is stored is ciphertext (an age file to the server's X25519
//! identity) and the list of workspace-relative paths it holds — never a file's content.

use chrono::{DateTime, Utc};
use surrealdb::types::SurrealValue;

use super::{Statement, Store, store_error};
use crate::credentials::SealedVault;
use crate::error::FleetError;
use crate::model::AgentId;

/// The stored fields of a vault (the record id is the agent's id).
#[derive(SurrealValue)]
struct VaultContent {
    sealed: bytes::Bytes,
    paths: Vec<String>,
    updated_at: DateTime<Utc>,
}

impl Store {
    /// The agent's sealed vault, if it has one.
    pub async fn load_vault(&self, agent: AgentId) -> Result<Option<SealedVault>, FleetError> {
        let statement = Statement::new(
            "SELECT sealed, paths, updated_at FROM ONLY type::record('credential_vault', $key);",
        )
        .bind("key", agent.to_string());
        let mut results = self.run(statement, FleetError::Store).await?;
        let row: Option<VaultContent> = results.take(0).map_err(store_error)?;
        Ok(row.map(|r| SealedVault {
            sealed: r.sealed,
            paths: r.paths,
        }))
    }

    /// Replace the agent's sealed vault (`None`: remove it).
    pub async fn save_vault(
        &self,
        agent: AgentId,
        vault: Option<&SealedVault>,
    ) -> Result<(), FleetError> {
        let statement = match vault {
            Some(vault) => Statement::new(
                "UPSERT type::record('credential_vault', $key) CONTENT $vault RETURN NONE;",
            )
            .bind(
                "vault",
                VaultContent {
                    sealed: vault.sealed.clone(),
                    paths: vault.paths.clone(),
                    updated_at: Utc::now(),
                },
            ),
            None => Statement::new("DELETE type::record('credential_vault', $key);"),
        }
        .bind("key", agent.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }
}
