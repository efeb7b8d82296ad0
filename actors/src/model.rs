//! The domain types every layer shares: agents (their stored record and their published view),
//! users and the principal making a request.
//!
//! These types carry no HTTP and no database concerns: the server maps them to its JSON shapes,
//! the store maps them to rows.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An agent's immutable identity. Docker volumes and every stored row are keyed by it, so a rename
/// never moves data. UUID v7: sortable by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgentId(pub Uuid);

impl AgentId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for AgentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The simple (hyphen-less) form keeps Docker object names short.
        write!(f, "{}", self.0.simple())
    }
}

impl FromStr for AgentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Which agent runtime runs inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentRuntime {
    ClaudeCode,
    GeminiCli,
}

impl AgentRuntime {
    pub const ALL: [AgentRuntime; 2] = [AgentRuntime::ClaudeCode, AgentRuntime::GeminiCli];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentRuntime::ClaudeCode => "claude-code",
            AgentRuntime::GeminiCli => "gemini-cli",
        }
    }

    /// The file in the workspace where the runtime reads its standing instructions.
    pub fn instructions_file(self) -> &'static str {
        match self {
            AgentRuntime::ClaudeCode => "CLAUDE.md",
            AgentRuntime::GeminiCli => "GEMINI.md",
        }
    }

    /// The runtime's own state directory under the home directory (settings, transcripts,
    /// credentials). It stays writable when the workspace is read-only.
    pub fn state_dir(self) -> &'static str {
        match self {
            AgentRuntime::ClaudeCode => ".claude",
            AgentRuntime::GeminiCli => ".gemini",
        }
    }
}

impl FromStr for AgentRuntime {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl fmt::Display for AgentRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CPU and memory limits as clients write them (`"2"`, `"4g"`), validated at creation so they
/// always convert to what Docker enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: "2".into(),
            memory: "4g".into(),
        }
    }
}

impl Resources {
    /// CPU limit in billionths of a CPU (Docker's `NanoCPUs`).
    pub fn nano_cpus(&self) -> Result<i64, String> {
        crate::validate::parse_cpu(&self.cpu)
    }

    /// Memory limit in bytes.
    pub fn memory_bytes(&self) -> Result<i64, String> {
        crate::validate::parse_memory(&self.memory)
    }
}

/// Where an agent's stored row stands in its life. Rows that are not `Ready` are intents left by
/// an interrupted create or delete; recovery finishes them (a create is rolled back, a delete
/// completed), so a crash never leaves half-made agents behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Provisioning,
    Ready,
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Provisioning => "provisioning",
            Phase::Ready => "ready",
            Phase::Deleting => "deleting",
        }
    }
}

impl FromStr for Phase {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "provisioning" => Ok(Phase::Provisioning),
            "ready" => Ok(Phase::Ready),
            "deleting" => Ok(Phase::Deleting),
            _ => Err(()),
        }
    }
}

/// Everything flotilla stores about an agent. Owned by the agent's actor; persisted by the
/// registry actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: AgentId,
    pub name: String,
    /// Username of the owner (an email, or `admin`).
    pub owner: String,
    pub agent_type: String,
    pub runtime: AgentRuntime,
    pub runtime_model: Option<String>,
    pub template: Option<String>,
    pub resources: Resources,
    pub custom_instructions: Option<String>,
    pub github_repo: Option<String>,
    /// Lower-cased, deduplicated, sorted.
    pub tags: Vec<String>,
    pub system: bool,
    /// SSH gateway port leased to this agent, unique within the instance.
    pub ssh_port: u16,
    pub autonomy_enabled: bool,
    pub read_only_enabled: bool,
    /// Path patterns for the runtime's read-only hook (a second layer under the read-only
    /// mount).
    pub read_only_patterns: ReadOnlyPatterns,
    /// How long the runtime may run one task (60–7200 s).
    pub execution_timeout_seconds: i64,
    /// Publishes `~/shared-out` (a volume of its own) to other agents.
    pub expose_enabled: bool,
    /// Mounts, read-only, the shared folders of the producers its owner may access.
    pub consume_enabled: bool,
    /// 0 while the generated default is shown; changes on every upload.
    pub avatar_version: i64,
    pub created: DateTime<Utc>,
    pub phase: Phase,
}

/// Glob patterns the runtime's read-only hook applies to the paths its tools write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOnlyPatterns {
    pub blocked_patterns: Vec<String>,
    pub allowed_patterns: Vec<String>,
}

/// Default, minimum and maximum of `execution_timeout_seconds`.
pub const DEFAULT_EXECUTION_TIMEOUT: i64 = 900;
pub const EXECUTION_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 60..=7200;

/// What the API reports as an agent's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Stopped,
    Paused,
    Restarting,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
        }
    }
}

/// The published, read-only snapshot of one agent: its record plus what its actor last saw of the
/// container. Reads (list, get, access checks) are answered from these without touching the
/// actor, so they never queue behind a slow Docker call.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub record: AgentRecord,
    pub status: Status,
    pub container_id: Option<String>,
    /// The container is gone from Docker; the next start recreates it.
    pub container_missing: bool,
    /// When the container last started, if known.
    pub started_at: Option<DateTime<Utc>>,
    /// Digest of the spec the current container was built from (its `flotilla.spec` label).
    pub spec_digest: Option<String>,
    /// Producers whose shared folders the current container mounts.
    pub mounted_producers: Vec<AgentId>,
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            _ => Err(()),
        }
    }
}

/// A stored user account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Login name: a lower-cased email, or `admin`.
    pub username: String,
    pub role: Role,
    /// PHC string (argon2id); produced and checked by the server, opaque here.
    pub password_hash: String,
    /// Bumped on every password change; tokens carry the version they were issued under, so a
    /// password change revokes every older token at once.
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
}

/// Who is making a request: the authenticated user, as the access rules see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub username: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
