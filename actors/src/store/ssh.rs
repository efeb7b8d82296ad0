//! The `ssh_key` table (`schema/003_ssh_keys.surql`): SSH access keys issued for agents.
//!
//! Written only by the registry actor. Rows carry their agent's id in `agent`, so
//! [`Store::delete_agent`] removes them in the agent-delete transaction.

use chrono::{DateTime, Utc};
use surrealdb::types::{SurrealValue, Value};

use super::{Statement, Store};
use crate::error::FleetError;
use crate::model::AgentId;
use crate::ssh::SshKey;

/// The stored fields of a key (the record id is the key's id).
#[derive(Debug, Clone, SurrealValue)]
struct SshKeyContent {
    agent: String,
    public_key: String,
    fingerprint: String,
    created_by: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<&SshKey> for SshKeyContent {
    fn from(k: &SshKey) -> Self {
        Self {
            agent: k.agent_id.to_string(),
            public_key: k.public_key.clone(),
            fingerprint: k.fingerprint.clone(),
            created_by: k.created_by.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

/// A key row as selected, with its record key projected as `key`.
#[derive(Debug, Clone, SurrealValue)]
struct SshKeyRow {
    key: String,
    #[surreal(flatten)]
    content: SshKeyContent,
}

impl SshKeyRow {
    fn into_key(self) -> Result<SshKey, FleetError> {
        let c = self.content;
        Ok(SshKey {
            id: self.key,
            agent_id: c
                .agent
                .parse()
                .map_err(|e| FleetError::Store(format!("unreadable ssh_key row: {e}")))?,
            public_key: c.public_key,
            fingerprint: c.fingerprint,
            created_by: c.created_by,
            created_at: c.created_at,
            expires_at: c.expires_at,
        })
    }
}

impl Store {
    /// Every stored key, expired or not.
    pub async fn load_ssh_keys(&self) -> Result<Vec<SshKey>, FleetError> {
        let rows: Vec<SshKeyRow> = self
            .select("SELECT *, record::id(id) AS key FROM ssh_key")
            .await?;
        rows.into_iter().map(SshKeyRow::into_key).collect()
    }

    /// Store a newly issued key and drop its agent's keys that expired by `now`, in one
    /// transaction.
    pub async fn insert_ssh_key(&self, key: &SshKey, now: DateTime<Utc>) -> Result<(), FleetError> {
        let statement = Statement::new(
            "BEGIN TRANSACTION;
             DELETE ssh_key WHERE agent = $agent AND expires_at <= $now;
             CREATE type::record('ssh_key', $key) CONTENT $content RETURN NONE;
             COMMIT TRANSACTION;",
        )
        .bind("agent", key.agent_id.to_string())
        .bind("now", now)
        .bind("key", key.id.clone())
        .bind("content", SshKeyContent::from(key));
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Delete one of an agent's keys (`Some(id)`) or all of them.
    pub async fn delete_ssh_keys(
        &self,
        agent: AgentId,
        key_id: Option<&str>,
    ) -> Result<(), FleetError> {
        let statement = match key_id {
            None => Statement::new("DELETE ssh_key WHERE agent = $agent;"),
            Some(id) => {
                Statement::new("DELETE type::record('ssh_key', $key) WHERE agent = $agent;")
                    .bind("key", id.to_string())
            }
        }
        .bind("agent", agent.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }
}
