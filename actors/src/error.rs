//! The runtime's error type. It knows nothing of HTTP: the server maps each variant to a status
//! code in one place (`src/error.rs`).

use crate::agent::lifecycle::TransitionError;
use crate::runtime::RuntimeError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    /// The thing does not exist, or the caller may not see it (the two are indistinguishable on
    /// purpose, so names cannot be probed).
    #[error("{kind} '{name}' not found")]
    NotFound { kind: &'static str, name: String },

    /// The caller can see the thing but may not do this to it.
    #[error("{0}")]
    Forbidden(String),

    /// Input failed validation; `field` names the offending field.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// The input is larger than allowed.
    #[error("{0}")]
    TooLarge(String),

    /// A uniqueness conflict (name taken, already shared, ...).
    #[error("{0}")]
    Conflict(String),

    /// The agent's state does not allow the operation right now.
    #[error(transparent)]
    IllegalState(#[from] TransitionError),

    /// Wrong username or password.
    #[error("incorrect username or password")]
    BadCredentials,

    /// No free SSH port is left in the configured range.
    #[error("no free SSH port left in the configured range")]
    PortsExhausted,

    /// What was asked for does not exist yet but will shortly (an agent's first stats
    /// samples); asking again after `retry_after_secs` should succeed.
    #[error("{detail}")]
    NotReady {
        detail: String,
        retry_after_secs: u64,
    },

    /// The container runtime (Docker) could not be reached.
    #[error("docker is unavailable: {0}")]
    RuntimeUnavailable(String),

    /// The container runtime did not answer in time.
    #[error("docker timed out: {0}")]
    RuntimeTimeout(String),

    /// The container runtime refused or failed the operation.
    #[error("docker failed: {0}")]
    Runtime(String),

    /// An actor did not answer within its deadline.
    #[error("the agent is busy: {0}")]
    ActorTimeout(String),

    /// An actor's mailbox is closed (it stopped or crashed); the operation did not run.
    #[error("the agent is restarting, try again")]
    ActorGone,

    /// The database failed.
    #[error("store error: {0}")]
    Store(String),

    /// A bug or an unexpected condition.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FleetError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FleetError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn agent_not_found(name: impl Into<String>) -> Self {
        FleetError::NotFound {
            kind: "agent",
            name: name.into(),
        }
    }
}

impl From<RuntimeError> for FleetError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Unavailable(m) => FleetError::RuntimeUnavailable(m),
            RuntimeError::Timeout(m) => FleetError::RuntimeTimeout(m),
            RuntimeError::NotFound(m) => FleetError::Runtime(format!("not found: {m}")),
            RuntimeError::Conflict(m) => FleetError::Conflict(m),
            RuntimeError::Other(m) => FleetError::Runtime(m),
        }
    }
}

impl From<actix::MailboxError> for FleetError {
    fn from(e: actix::MailboxError) -> Self {
        match e {
            actix::MailboxError::Closed => FleetError::ActorGone,
            actix::MailboxError::Timeout => FleetError::ActorTimeout("no answer in time".into()),
        }
    }
}
