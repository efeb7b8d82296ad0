//! The container runtime boundary.
//!
//! Agent actors decide *when* and *in what order* things happen to an agent; a
//! [`ContainerRuntime`] does them. The first implementation is local Docker through bollard
//! ([`docker::DockerRuntime`]); a Swarm or Kubernetes backend implements the same trait without
//! touching actors or routes. Runtime-neutral descriptions ([`ContainerSpec`], [`ContainerInfo`])
//! cross the boundary, never bollard types.
//!
//! Every method is bounded in time by the implementation and classifies failures into
//! [`RuntimeError`], which the fleet maps to 503 (unreachable), 504 (timed out) or 409/500.

pub mod docker;
pub mod image;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::Serialize;

/// Label keys written on every object flotilla creates.
pub mod labels {
    /// The flotilla instance that owns the object; an instance only sees its own objects.
    pub const INSTANCE: &str = "flotilla.instance";
    pub const AGENT_ID: &str = "flotilla.agent-id";
    pub const AGENT_NAME: &str = "flotilla.agent-name";
    pub const RUNTIME: &str = "flotilla.runtime";
    pub const TYPE: &str = "flotilla.type";
    pub const SSH_PORT: &str = "flotilla.ssh-port";
    /// Digest of the [`ContainerSpec`](super::ContainerSpec) the container was created from; a
    /// container whose digest differs from the desired spec is recreated on its next start.
    pub const SPEC: &str = "flotilla.spec";
    /// Set on flotilla's short-lived helper containers (`writer`): never started, always
    /// disposable; recovery removes any left behind.
    pub const ROLE: &str = "flotilla.role";
    /// Ids of the producers whose shared folders the container mounts, comma-separated.
    pub const CONSUMES: &str = "flotilla.consumes";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Other(String),
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    pub volume: String,
    pub target: String,
    pub read_only: bool,
}

/// Everything needed to create an agent's container. Security hardening that never varies
/// (capabilities, no-new-privileges, init, restart policy) is applied by the runtime
/// implementation; see [`docker::DockerRuntime::create_container`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `uid:gid` the main process runs as.
    pub user: String,
    pub hostname: String,
    pub working_dir: String,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<VolumeMount>,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub pids_limit: i64,
}

impl ContainerSpec {
    /// A stable digest of the spec (labels excluding the digest itself), written as the
    /// [`labels::SPEC`] label.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut copy = self.clone();
        copy.labels.remove(labels::SPEC);
        // Serialising a struct of strings, integers and BTreeMaps cannot fail.
        let json = serde_json::to_vec(&copy).unwrap_or_default();
        let hash = Sha256::digest(&json);
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The state of a container as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// Created, exited or dead.
    Stopped,
    Paused,
    Restarting,
}

/// What the runtime knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub labels: BTreeMap<String, String>,
    /// When the container last started (known from an inspect, not from a list).
    pub started_at: Option<DateTime<Utc>>,
    /// The kernel's OOM killer ended its last run (known from an inspect, not from a list).
    pub oom_killed: bool,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A stream of raw bytes from the runtime (archives, logs).
pub type ByteStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

/// What `lstat` of a path inside a container says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub is_dir: bool,
    pub is_symlink: bool,
    /// RFC 3339, as the runtime reports it.
    pub modified: Option<String>,
    /// For a symlink: the absolute path it resolves to inside the container (all links in it
    /// followed).
    pub link_target: Option<String>,
}

/// One raw stats reading of a container. CPU figures are cumulative counters; a percentage
/// needs two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsReading {
    pub read_at: DateTime<Utc>,
    /// Total CPU time the container has used, in nanoseconds.
    pub cpu_total_ns: u64,
    /// Total CPU time of the host, in nanoseconds.
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, page cache excluded.
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    /// Summed over all interfaces.
    pub network_rx_bytes: u64,
    pub network_tx_bytes: u64,
}

/// Something that happened to a container, from the runtime's event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub container_id: String,
    /// `start`, `die`, `oom`, `destroy`, ... as the runtime names them.
    pub action: String,
    pub labels: BTreeMap<String, String>,
    /// For `die`.
    pub exit_code: Option<i64>,
}

/// A stream of container events.
pub type EventStream = BoxStream<'static, Result<RuntimeEvent, RuntimeError>>;

/// Facts about the host, used to validate resource requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    pub cpus: i64,
    pub memory_bytes: i64,
}

/// The size of a terminal, in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtySize {
    pub cols: u16,
    pub rows: u16,
}

/// A process to run inside a running container with its standard streams attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// `name`, `uid` or `uid:gid` the process runs as.
    pub user: String,
    pub working_dir: String,
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<String>,
    /// Give the process a pseudo-terminal of this size (from its start where the runtime
    /// allows, else within milliseconds of it). Its stdout and stderr then arrive merged,
    /// as the terminal shows them, all as [`ExecOutput::Stdout`].
    pub tty: Option<TtySize>,
}

/// A chunk of an attached exec's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// An exec running with its streams attached (see [`ContainerRuntime::exec_attached`]).
pub struct AttachedExec {
    /// The runtime's id of the exec, for [`ContainerRuntime::resize_exec`] and
    /// [`ContainerRuntime::exec_exit_code`].
    pub id: String,
    /// The process's output; ends once the process has exited and everything it wrote was
    /// delivered. Not bounded in time: an interactive shell runs as long as it likes.
    pub output: BoxStream<'static, Result<ExecOutput, RuntimeError>>,
    /// The process's stdin; shutting it down closes the process's stdin (end of input).
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for AttachedExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachedExec")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The operations agent actors need from a container runtime. Implementations must be cheap to
/// share (`Arc`), bound every call in time, and treat "already in that state" (start a running
/// container, remove a missing one) as success where the doc says so.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Host CPU count and memory.
    async fn host_info(&self) -> Result<HostInfo, RuntimeError>;

    /// Whether an image exists locally.
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError>;

    /// Create a named volume with labels; succeeds if it already exists.
    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), RuntimeError>;

    /// Whether a volume exists.
    async fn volume_exists(&self, name: &str) -> Result<bool, RuntimeError>;

    /// Remove a volume; succeeds if it does not exist.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;

    /// Names of the volumes carrying `label=value`.
    async fn list_volumes(&self, label: &str, value: &str) -> Result<Vec<String>, RuntimeError>;

    /// Create (not start) a container; returns its id. A name already in use is `Conflict`.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    /// Start a container; succeeds if it is already running. Unpauses a paused one.
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;

    /// Stop a container, waiting at most `grace` before killing it; succeeds if already stopped.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Remove a container (forcibly, keeping its volumes); succeeds if it does not exist.
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;

    /// Rename a container.
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<(), RuntimeError>;

    /// Inspect a container by id or name; `None` if it does not exist.
    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError>;

    /// All containers (any state) carrying `label=value`.
    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// Extract a tar archive into `path` inside the container (works on stopped containers).
    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> Result<(), RuntimeError>;

    /// A tar archive of `path` inside the container, streamed (works on stopped containers).
    /// Symlinks inside the archived tree are archived as links, not followed.
    fn archive(&self, id: &str, path: &str) -> ByteStream;

    /// `lstat` of `path` inside the container; `None` if it does not exist. Note that links in
    /// the *parent* components of `path` are followed by the runtime.
    async fn stat_path(&self, id: &str, path: &str) -> Result<Option<PathStat>, RuntimeError>;

    /// The last `tail` lines of the container's output, stdout and stderr interleaved in the
    /// order they were written, at most `max_bytes` (the newest are kept).
    async fn logs(&self, id: &str, tail: u64, max_bytes: usize) -> Result<Bytes, RuntimeError>;

    /// The container's output from the last `tail` lines on, live, until the stream is dropped.
    fn follow_logs(&self, id: &str, tail: u64) -> ByteStream;

    /// Container events (from now on) of containers carrying `label=value`. Ends or fails when
    /// the connection to the runtime does; the caller resubscribes.
    fn container_events(&self, label: &str, value: &str) -> EventStream;

    /// One stats reading (one-shot: no waiting for a second sample).
    async fn stats(&self, id: &str) -> Result<StatsReading, RuntimeError>;

    /// Start `spec` in the running container `id` with stdin, stdout and stderr attached.
    /// Starting is bounded in time; the process itself then runs as long as it likes. A
    /// container that is not running is `Conflict`, a missing one `NotFound`.
    async fn exec_attached(&self, id: &str, spec: &ExecSpec) -> Result<AttachedExec, RuntimeError>;

    /// Resize the terminal of an exec started with a TTY.
    async fn resize_exec(&self, exec_id: &str, size: TtySize) -> Result<(), RuntimeError>;

    /// The exit code of an exec, `None` while it still runs. Ask after its output has ended:
    /// the runtime may only know the code once the output is drained.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError>;
}
