//! Messages of an agent actor. Every one of them runs alone and to completion (the actor handles
//! them as `AtomicResponse`s), in arrival order.

use actix::Message;

use crate::error::FleetError;
use crate::model::ReadOnlyPatterns;
use crate::runtime::ContainerInfo;

/// Create the agent's volume and container, seed its workspace and start it. On any failure,
/// remove everything made so far, including the registry row and port lease.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct Provision;

/// What a start did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The agent was started; `credentials` says what became of its credential vault.
    Started {
        credentials: crate::credentials::CredentialsInjection,
    },
    AlreadyRunning,
}

impl StartOutcome {
    /// What the start did with the credential vault (`Skipped` when already running).
    pub fn credentials(self) -> crate::credentials::CredentialsInjection {
        match self {
            Self::Started { credentials } => credentials,
            Self::AlreadyRunning => crate::credentials::CredentialsInjection::Skipped,
        }
    }
}

/// Start the agent, (re)creating its container first if it is missing or stale.
#[derive(Debug, Message)]
#[rtype(result = "Result<StartOutcome, FleetError>")]
pub struct StartAgent;

/// Stop the agent (idempotent).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct StopAgent;

/// Rename the agent: registry first (uniqueness), then the container. Volumes are keyed by id and
/// do not move.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct RenameAgent {
    pub new_name: String,
}

/// Delete the agent: container, volumes, rows, lease and shares. Also finishes an interrupted
/// create or delete found at start-up.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct DeleteAgent;

/// Finish a removal that could not complete (Docker became unreachable half-way through a
/// delete, or through the rollback of a failed create). Sent by the actor to itself, on a
/// timer, until the agent is gone; does nothing unless the agent is `Deleting`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct FinishRemoval;

/// Re-read the container from Docker and repair what a crash can leave behind: a container
/// still named after the agent's old name (the server died between a rename's registry write
/// and its Docker rename). Sent by start-up recovery and by the supervisor after a restart.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct Reconcile;

/// Replace the agent's avatar with an already validated image; replies with the new version.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, FleetError>")]
pub struct SetAvatar {
    pub content_type: String,
    pub data: bytes::Bytes,
}

/// A change to the agent's runtime configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Autonomy(bool),
    /// `patterns: None` keeps the stored patterns.
    ReadOnly {
        enabled: bool,
        patterns: Option<ReadOnlyPatterns>,
    },
    Timeout(i64),
    /// `None` keeps the current value; `apply` recreates a running container at once.
    Folders {
        expose: Option<bool>,
        consume: Option<bool>,
        apply: bool,
    },
}

/// What a configuration change did to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigOutcome {
    /// The running container was recreated (read-only toggled on a running agent).
    pub container_recreated: bool,
    /// Part of the change reaches the runtime only at the next start (environment, mounts).
    pub applies_on_next_start: bool,
}

/// Store a configuration change and apply it to the runtime: the state-directory files at
/// once, the container (mounts, environment) now if it must be recreated while running, else
/// at the next start.
#[derive(Debug, Message)]
#[rtype(result = "Result<ConfigOutcome, FleetError>")]
pub struct Configure {
    pub change: ConfigChange,
}

/// Stop mounting a producer's shared folder (the producer is being deleted).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct DetachProducer {
    pub producer: crate::model::AgentId,
}

/// A file flotilla writes into the agent's home directory. Its `Debug` leaves the content out
/// (credential files travel in these too).
#[derive(Clone, PartialEq, Eq)]
pub struct HomeFile {
    /// Relative to `/home/developer`, already validated.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Write files into the agent's home (owned by `developer`), whether the agent runs, is
/// stopped, or has its workspace mounted read-only.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), FleetError>")]
pub struct WriteHomeFiles {
    pub files: Vec<HomeFile>,
}

impl std::fmt::Debug for HomeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeFile")
            .field("path", &self.path)
            .field("bytes", &self.content.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Add `files` to the agent's credential vault (replacing files of the same path) and write
/// them into its home, mode 0600, owned by `developer` — running, stopped or read-only. Checks
/// the paths against the workspace first; if the write fails, the vault is put back as it was.
#[derive(Debug, Message)]
#[rtype(result = "Result<crate::credentials::Injected, FleetError>")]
pub struct InjectCredentials {
    pub files: crate::credentials::CredentialFiles,
}

/// Docker reported something about one of this agent's containers (from the event watcher).
/// Facts, not commands: the actor re-reads the container and adopts the truth.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ContainerEventSeen {
    pub container_id: String,
    /// `start`, `die`, `destroy`, ...
    pub action: String,
    pub exit_code: Option<i64>,
}

/// Re-read the container from Docker (after the watcher reconnected: events may have been
/// missed while it was away).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RefreshFromDocker;

/// What recovery found in Docker for this agent (`None`: no container carries its id).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ContainerObserved {
    pub container: Option<ContainerInfo>,
}
