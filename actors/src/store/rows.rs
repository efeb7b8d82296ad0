//! Row shapes as SurrealDB stores them, and their conversion to and from the domain types.
//! Conversions from rows are fallible: a row that does not parse is reported, never guessed.

use chrono::{DateTime, Utc};
use surrealdb::types::{SurrealValue, Value};

use crate::access::Share;
use crate::error::FleetError;
use crate::model::{
    AgentId, AgentRecord, DEFAULT_EXECUTION_TIMEOUT, Phase, ReadOnlyPatterns, Resources, Role, User,
};

fn default_timeout() -> i64 {
    DEFAULT_EXECUTION_TIMEOUT
}

fn corrupt(table: &str, what: impl std::fmt::Display) -> FleetError {
    FleetError::Store(format!("unreadable {table} row: {what}"))
}

/// The stored fields of an agent (the record id is the agent id).
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct AgentContent {
    name: String,
    owner: String,
    agent_type: String,
    runtime: String,
    runtime_model: Option<String>,
    template: Option<String>,
    cpu: String,
    memory: String,
    custom_instructions: Option<String>,
    github_repo: Option<String>,
    #[surreal(default)]
    tags: Vec<String>,
    system: bool,
    ssh_port: i64,
    autonomy_enabled: bool,
    read_only_enabled: bool,
    #[surreal(default)]
    avatar_version: i64,
    #[surreal(default)]
    read_only_blocked: Vec<String>,
    #[surreal(default)]
    read_only_allowed: Vec<String>,
    #[surreal(default = "default_timeout")]
    execution_timeout_seconds: i64,
    #[surreal(default)]
    expose_enabled: bool,
    #[surreal(default)]
    consume_enabled: bool,
    created: DateTime<Utc>,
    phase: String,
}

impl From<&AgentRecord> for AgentContent {
    fn from(r: &AgentRecord) -> Self {
        Self {
            name: r.name.clone(),
            owner: r.owner.clone(),
            agent_type: r.agent_type.clone(),
            runtime: r.runtime.to_string(),
            runtime_model: r.runtime_model.clone(),
            template: r.template.clone(),
            cpu: r.resources.cpu.clone(),
            memory: r.resources.memory.clone(),
            custom_instructions: r.custom_instructions.clone(),
            github_repo: r.github_repo.clone(),
            tags: r.tags.clone(),
            system: r.system,
            ssh_port: i64::from(r.ssh_port),
            autonomy_enabled: r.autonomy_enabled,
            read_only_enabled: r.read_only_enabled,
            avatar_version: r.avatar_version,
            read_only_blocked: r.read_only_patterns.blocked_patterns.clone(),
            read_only_allowed: r.read_only_patterns.allowed_patterns.clone(),
            execution_timeout_seconds: r.execution_timeout_seconds,
            expose_enabled: r.expose_enabled,
            consume_enabled: r.consume_enabled,
            created: r.created,
            phase: r.phase.as_str().to_string(),
        }
    }
}

/// An agent row as selected, with its record key projected as `key`.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct AgentRow {
    key: String,
    #[surreal(flatten)]
    content: AgentContent,
}

impl AgentRow {
    pub(super) fn into_record(self) -> Result<AgentRecord, FleetError> {
        let c = self.content;
        Ok(AgentRecord {
            id: self
                .key
                .parse::<AgentId>()
                .map_err(|e| corrupt("agent", e))?,
            runtime: c
                .runtime
                .parse()
                .map_err(|_| corrupt("agent", format!("runtime '{}'", c.runtime)))?,
            phase: c
                .phase
                .parse::<Phase>()
                .map_err(|_| corrupt("agent", format!("phase '{}'", c.phase)))?,
            ssh_port: u16::try_from(c.ssh_port)
                .map_err(|_| corrupt("agent", format!("port {}", c.ssh_port)))?,
            name: c.name,
            owner: c.owner,
            agent_type: c.agent_type,
            runtime_model: c.runtime_model,
            template: c.template,
            resources: Resources {
                cpu: c.cpu,
                memory: c.memory,
            },
            custom_instructions: c.custom_instructions,
            github_repo: c.github_repo,
            tags: c.tags,
            system: c.system,
            autonomy_enabled: c.autonomy_enabled,
            read_only_enabled: c.read_only_enabled,
            avatar_version: c.avatar_version,
            read_only_patterns: ReadOnlyPatterns {
                blocked_patterns: c.read_only_blocked,
                allowed_patterns: c.read_only_allowed,
            },
            execution_timeout_seconds: c.execution_timeout_seconds,
            expose_enabled: c.expose_enabled,
            consume_enabled: c.consume_enabled,
            created: c.created,
        })
    }
}

/// A user row (the record id is the username).
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct UserContent {
    username: String,
    role: String,
    password_hash: String,
    token_version: i64,
    created_at: DateTime<Utc>,
}

impl From<&User> for UserContent {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            role: u.role.as_str().to_string(),
            password_hash: u.password_hash.clone(),
            token_version: u.token_version,
            created_at: u.created_at,
        }
    }
}

impl UserContent {
    pub(super) fn into_user(self) -> Result<User, FleetError> {
        Ok(User {
            role: self
                .role
                .parse::<Role>()
                .map_err(|_| corrupt("user", format!("role '{}'", self.role)))?,
            username: self.username,
            password_hash: self.password_hash,
            token_version: self.token_version,
            created_at: self.created_at,
        })
    }
}

/// The stored fields of a share.
#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ShareContent {
    agent: String,
    email: String,
    shared_by: String,
    created_at: DateTime<Utc>,
}

impl From<&Share> for ShareContent {
    fn from(s: &Share) -> Self {
        Self {
            agent: s.agent_id.to_string(),
            email: s.email.clone(),
            shared_by: s.shared_by.clone(),
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Clone, SurrealValue)]
pub(super) struct ShareRow {
    key: String,
    #[surreal(flatten)]
    content: ShareContent,
}

impl ShareRow {
    pub(super) fn into_share(self) -> Result<Share, FleetError> {
        let c = self.content;
        Ok(Share {
            id: self.key,
            agent_id: c.agent.parse().map_err(|e| corrupt("share", e))?,
            email: c.email,
            shared_by: c.shared_by,
            created_at: c.created_at,
        })
    }
}
