//! The store: typed access to the embedded SurrealDB (`Surreal<Any>`, opened from a URL:
//! `surrealkv://` on disk by default, `mem://` in tests, a remote server later).
//!
//! Only the registry and sharing actors hold a `Store`; nothing else touches the database. Every
//! multi-row change is one transaction. SurrealDB reports retryable transaction conflicts under
//! concurrent writes; [`Store::run`] retries those a few times before giving up.

mod credentials;
mod rows;
mod ssh;

use std::sync::Arc;
use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::{self, Any};
use surrealdb::types::{QueryError, SurrealValue};
use tracing::{debug, info};

use crate::access::Share;
use crate::error::FleetError;
use crate::model::{AgentId, AgentRecord, User};

use self::rows::{AgentContent, AgentRow, ShareContent, ShareRow, UserContent};

/// The schema files, applied in this order at every start (each statement is idempotent).
const SCHEMA: &[(&str, &str)] = &[
    (
        "001_core.surql",
        include_str!("../../../schema/001_core.surql"),
    ),
    (
        "002_avatars.surql",
        include_str!("../../../schema/002_avatars.surql"),
    ),
    (
        "003_ssh_keys.surql",
        include_str!("../../../schema/003_ssh_keys.surql"),
    ),
    (
        "004_agent_settings.surql",
        include_str!("../../../schema/004_agent_settings.surql"),
    ),
    (
        "005_credentials.surql",
        include_str!("../../../schema/005_credentials.surql"),
    ),
    (
        "006_folders.surql",
        include_str!("../../../schema/006_folders.surql"),
    ),
];

const NAMESPACE: &str = "flotilla";
const DATABASE: &str = "main";
/// Attempts for a write that keeps hitting retryable transaction conflicts.
const ATTEMPTS: u32 = 5;

/// Cheap to clone: every clone shares one handle, and so one database session. (Cloning a
/// `Surreal` handle itself opens a new engine session, ~50 KB each — one per agent actor, and
/// one more per operation, when each actor's dependencies held their own clone.)
#[derive(Clone)]
pub struct Store {
    db: Arc<Surreal<Any>>,
}

/// How a failed statement should be treated.
enum Failure {
    /// A unique index refused the write.
    Duplicate(String),
    /// Another transaction interfered; the write can be retried.
    Retryable(String),
    Other(String),
}

fn classify(e: &surrealdb::Error) -> Failure {
    let message = e.message().to_string();
    if matches!(e.query_details(), Some(QueryError::TransactionConflict))
        || message.contains("can be retried")
    {
        Failure::Retryable(message)
    } else if message.contains("already contains") || e.is_already_exists() {
        Failure::Duplicate(message)
    } else {
        Failure::Other(message)
    }
}

/// The error that actually failed a transaction: statements before and after it only report
/// that they were not executed.
fn first_real_error(results: &mut surrealdb::IndexedResults) -> Option<surrealdb::Error> {
    let mut errors: Vec<(usize, surrealdb::Error)> = results.take_errors().into_iter().collect();
    errors.sort_by_key(|(i, _)| *i);
    let real = errors.iter().position(|(_, e)| {
        !matches!(
            e.query_details(),
            Some(QueryError::NotExecuted) | Some(QueryError::Cancelled)
        )
    });
    match real {
        Some(i) => Some(errors.swap_remove(i).1),
        None => errors.into_iter().next().map(|(_, e)| e),
    }
}

fn store_error(e: impl std::fmt::Display) -> FleetError {
    FleetError::Store(e.to_string())
}

/// A query and its bound variables, re-runnable for retries.
struct Statement {
    sql: &'static str,
    vars: Vec<(&'static str, surrealdb::types::Value)>,
}

impl Statement {
    fn new(sql: &'static str) -> Self {
        Self {
            sql,
            vars: Vec::new(),
        }
    }

    fn bind(mut self, name: &'static str, value: impl SurrealValue) -> Self {
        self.vars.push((name, value.into_value()));
        self
    }
}

impl Store {
    /// Open the store at `url` and apply the schema.
    pub async fn open(url: &str) -> Result<Self, FleetError> {
        let db = any::connect(url).await.map_err(store_error)?;
        db.use_ns(NAMESPACE)
            .use_db(DATABASE)
            .await
            .map_err(store_error)?;
        for (name, sql) in SCHEMA {
            let mut results = db.query(*sql).await.map_err(store_error)?;
            if let Some(e) = first_real_error(&mut results) {
                return Err(FleetError::Store(format!(
                    "applying {name}: {}",
                    e.message()
                )));
            }
            debug!(schema = name, "schema applied");
        }
        info!(url = %redact(url), "store open");
        Ok(Self { db: Arc::new(db) })
    }

    /// Run a statement, retrying retryable conflicts; a unique-index refusal becomes
    /// `on_duplicate`'s error.
    async fn run(
        &self,
        statement: Statement,
        on_duplicate: impl Fn(String) -> FleetError,
    ) -> Result<surrealdb::IndexedResults, FleetError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut query = self.db.query(statement.sql);
            for (name, value) in &statement.vars {
                query = query.bind((*name, value.clone()));
            }
            let failure = match query.await {
                Ok(mut results) => match first_real_error(&mut results) {
                    None => return Ok(results),
                    Some(e) => classify(&e),
                },
                Err(e) => classify(&e),
            };
            match failure {
                Failure::Retryable(m) if attempt < ATTEMPTS => {
                    debug!(attempt, error = %m, "retrying after a transaction conflict");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                }
                Failure::Retryable(m) | Failure::Other(m) => return Err(FleetError::Store(m)),
                Failure::Duplicate(m) => return Err(on_duplicate(m)),
            }
        }
    }

    async fn select<T: SurrealValue>(&self, sql: &'static str) -> Result<Vec<T>, FleetError> {
        let mut results = self.run(Statement::new(sql), FleetError::Store).await?;
        results.take(0).map_err(store_error)
    }

    // ---- agents -------------------------------------------------------------------------

    pub async fn load_agents(&self) -> Result<Vec<AgentRecord>, FleetError> {
        let rows: Vec<AgentRow> = self
            .select("SELECT *, record::id(id) AS key FROM agent")
            .await?;
        rows.into_iter().map(AgentRow::into_record).collect()
    }

    /// One agent's row, if it exists.
    pub async fn load_agent(&self, id: AgentId) -> Result<Option<AgentRecord>, FleetError> {
        let statement = Statement::new(
            "SELECT *, record::id(id) AS key FROM ONLY type::record('agent', $key);",
        )
        .bind("key", id.to_string());
        let mut results = self.run(statement, FleetError::Store).await?;
        let row: Option<AgentRow> = results.take(0).map_err(store_error)?;
        row.map(AgentRow::into_record).transpose()
    }

    /// Insert a new agent row together with its port lease.
    pub async fn insert_agent(&self, record: &AgentRecord) -> Result<(), FleetError> {
        let name = record.name.clone();
        let statement = Statement::new(
            "BEGIN TRANSACTION;
             CREATE type::record('port_lease', $port) CONTENT { agent: $key };
             CREATE type::record('agent', $key) CONTENT $agent;
             COMMIT TRANSACTION;",
        )
        .bind("port", i64::from(record.ssh_port))
        .bind("key", record.id.to_string())
        .bind("agent", AgentContent::from(record));
        self.run(statement, |_| {
            FleetError::Conflict(format!("an agent named '{name}' already exists"))
        })
        .await
        .map(|_| ())
    }

    /// Replace an agent row with `record`.
    pub async fn update_agent(&self, record: &AgentRecord) -> Result<(), FleetError> {
        let name = record.name.clone();
        let statement =
            Statement::new("UPDATE type::record('agent', $key) CONTENT $agent RETURN NONE;")
                .bind("key", record.id.to_string())
                .bind("agent", AgentContent::from(record));
        self.run(statement, |_| {
            FleetError::Conflict(format!("an agent named '{name}' already exists"))
        })
        .await
        .map(|_| ())
    }

    /// Delete an agent's row, its port lease, its shares, its avatar, its SSH keys and its
    /// credential vault, in one transaction.
    pub async fn delete_agent(&self, id: AgentId) -> Result<(), FleetError> {
        let statement = Statement::new(
            "BEGIN TRANSACTION;
             DELETE type::record('agent', $key);
             DELETE port_lease WHERE agent = $key;
             DELETE share WHERE agent = $key;
             DELETE type::record('avatar', $key);
             DELETE ssh_key WHERE agent = $key;
             DELETE type::record('credential_vault', $key);
             COMMIT TRANSACTION;",
        )
        .bind("key", id.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Store an uploaded avatar and the agent record carrying its new version, together.
    pub async fn save_avatar(
        &self,
        record: &AgentRecord,
        content_type: &str,
        data: bytes::Bytes,
    ) -> Result<(), FleetError> {
        let statement = Statement::new(
            "BEGIN TRANSACTION;
             UPSERT type::record('avatar', $key)
                 CONTENT { content_type: $content_type, data: $data, version: $version }
                 RETURN NONE;
             UPDATE type::record('agent', $key) CONTENT $agent RETURN NONE;
             COMMIT TRANSACTION;",
        )
        .bind("key", record.id.to_string())
        .bind("content_type", content_type.to_string())
        .bind("data", data)
        .bind("version", record.avatar_version)
        .bind("agent", AgentContent::from(record));
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// An agent's uploaded avatar: content type and bytes.
    pub async fn load_avatar(
        &self,
        id: AgentId,
    ) -> Result<Option<(String, bytes::Bytes)>, FleetError> {
        #[derive(SurrealValue)]
        struct AvatarRow {
            content_type: String,
            data: bytes::Bytes,
        }
        let statement =
            Statement::new("SELECT content_type, data FROM ONLY type::record('avatar', $key);")
                .bind("key", id.to_string());
        let mut results = self.run(statement, FleetError::Store).await?;
        let row: Option<AvatarRow> = results.take(0).map_err(store_error)?;
        Ok(row.map(|r| (r.content_type, r.data)))
    }

    // ---- users and tokens ---------------------------------------------------------------

    pub async fn load_users(&self) -> Result<Vec<User>, FleetError> {
        let rows: Vec<UserContent> = self.select("SELECT * FROM user").await?;
        rows.into_iter().map(UserContent::into_user).collect()
    }

    /// Insert a user; `Conflict` if the username exists.
    pub async fn insert_user(&self, user: &User) -> Result<(), FleetError> {
        let username = user.username.clone();
        let statement =
            Statement::new("CREATE type::record('user', $key) CONTENT $user RETURN NONE;")
                .bind("key", user.username.clone())
                .bind("user", UserContent::from(user));
        self.run(statement, |_| {
            FleetError::Conflict(format!("a user named '{username}' already exists"))
        })
        .await
        .map(|_| ())
    }

    /// Create or replace a user.
    pub async fn upsert_user(&self, user: &User) -> Result<(), FleetError> {
        let statement =
            Statement::new("UPSERT type::record('user', $key) CONTENT $user RETURN NONE;")
                .bind("key", user.username.clone())
                .bind("user", UserContent::from(user));
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Delete a user's row.
    pub async fn delete_user(&self, username: &str) -> Result<(), FleetError> {
        let statement =
            Statement::new("DELETE type::record('user', $key);").bind("key", username.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Revoked token ids with their expiry (unix seconds).
    pub async fn load_revoked(&self) -> Result<Vec<(String, i64)>, FleetError> {
        #[derive(SurrealValue)]
        struct Revoked {
            key: String,
            expires_at: i64,
        }
        let rows: Vec<Revoked> = self
            .select("SELECT record::id(id) AS key, expires_at FROM revoked_token")
            .await?;
        Ok(rows.into_iter().map(|r| (r.key, r.expires_at)).collect())
    }

    pub async fn revoke_token(&self, jti: &str, expires_at: i64) -> Result<(), FleetError> {
        let statement = Statement::new(
            "UPSERT type::record('revoked_token', $key) CONTENT { expires_at: $exp } RETURN NONE;",
        )
        .bind("key", jti.to_string())
        .bind("exp", expires_at);
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Forget revocations of tokens that have expired by `now` (unix seconds).
    pub async fn prune_revoked(&self, now: i64) -> Result<(), FleetError> {
        let statement =
            Statement::new("DELETE revoked_token WHERE expires_at < $now;").bind("now", now);
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    // ---- shares -------------------------------------------------------------------------

    pub async fn load_shares(&self) -> Result<Vec<Share>, FleetError> {
        let rows: Vec<ShareRow> = self
            .select("SELECT *, record::id(id) AS key FROM share")
            .await?;
        rows.into_iter().map(ShareRow::into_share).collect()
    }

    /// Insert a share; `Conflict` if the agent is already shared with that email.
    pub async fn insert_share(&self, share: &Share) -> Result<(), FleetError> {
        let statement =
            Statement::new("CREATE type::record('share', $key) CONTENT $share RETURN NONE;")
                .bind("key", share.id.clone())
                .bind("share", ShareContent::from(share));
        self.run(statement, |_| {
            FleetError::Conflict(format!("already shared with {}", share.email))
        })
        .await
        .map(|_| ())
    }

    /// Delete a share.
    pub async fn delete_share(&self, id: &str) -> Result<(), FleetError> {
        let statement =
            Statement::new("DELETE type::record('share', $key);").bind("key", id.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }

    /// Delete every share with `email`, in one statement.
    pub async fn delete_shares_with(&self, email: &str) -> Result<(), FleetError> {
        let statement =
            Statement::new("DELETE share WHERE email = $email;").bind("email", email.to_string());
        self.run(statement, FleetError::Store).await.map(|_| ())
    }
}

/// A store URL without credentials, for logs.
fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_and_credentials, rest)) => {
            let scheme = scheme_and_credentials
                .split_once("://")
                .map(|(s, _)| s)
                .unwrap_or("");
            format!("{scheme}://***@{rest}")
        }
        None => url.to_string(),
    }
}
