//! Settings of the runtime. The server fills them from `FLOTILLA_*` environment variables
//! (see `src/config.rs`); tests fill them directly.

use std::ops::RangeInclusive;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Written as the `flotilla.instance` label on everything created; an instance only sees and
    /// reconciles its own objects.
    pub instance: String,
    /// Image every agent runs (`FLOTILLA_AGENT_IMAGE`). Never chosen by clients.
    pub agent_image: String,
    /// SSH gateway ports leased to agents, one each.
    pub ssh_ports: RangeInclusive<u16>,
    /// Store URL: `surrealkv:///abs/path` (default, on disk), `mem://` (tests), or a remote
    /// SurrealDB later.
    pub db_url: String,
    /// Upper bound of one ordinary Docker call (create, start, inspect...).
    pub docker_timeout: Duration,
    /// How long `stop` lets an agent exit before it is killed.
    pub stop_grace: Duration,
    /// Upper bound on how long an HTTP handler waits for an actor's answer (queueing included).
    pub actor_timeout: Duration,
    /// Process limit inside each agent container.
    pub pids_limit: i64,
    /// How often the stats sampler reads every running agent (`FLOTILLA_STATS_INTERVAL_MS`).
    pub stats_interval: Duration,
    /// Most stats requests the sampler has in flight against Docker at once
    /// (`FLOTILLA_STATS_CONCURRENCY`).
    pub stats_concurrency: usize,
    /// Most stats readings the sampler starts per second (`FLOTILLA_STATS_READINGS_PER_SECOND`):
    /// the bound on the time dockerd spends on stats, whatever the fleet's size.
    pub stats_readings_per_second: u32,
    /// Folder of agent templates (one sub-folder per template).
    pub templates_dir: std::path::PathBuf,
    /// Folder for state kept beside the store (`FLOTILLA_DATA_DIR`): the SSH gateway's host key,
    /// the credential vault key.
    pub data_dir: std::path::PathBuf,
    /// The host's credential files, injected into an agent when an inject request names none
    /// (`FLOTILLA_HOST_CREDENTIALS_DIR`; layout `<dir>/<runtime>/...` and `<dir>/common/...`).
    pub host_credentials_dir: Option<std::path::PathBuf>,
    /// Host name or address clients reach the SSH gateway at, as shown in ssh-access commands
    /// (`FLOTILLA_SSH_HOST`).
    pub ssh_host: String,
    /// Address the SSH gateway's per-agent listeners bind (`FLOTILLA_SSH_BIND`).
    pub ssh_bind: std::net::IpAddr,
    /// Shortest lifetime an SSH access key may be given: 6 minutes (0.1 h, the API's bound).
    /// Lowered only by tests, to watch a key expire without waiting minutes.
    pub ssh_min_ttl: Duration,
    /// Test-only fault injection (see [`crate::faults`]); always `None` outside tests: nothing
    /// reads it from the environment or a file.
    pub faults: Option<crate::faults::FaultPlan>,
}

impl FleetConfig {
    /// Defaults for everything but the store and instance.
    pub fn new(instance: impl Into<String>, db_url: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            agent_image: crate::runtime::image::DEFAULT_IMAGE.to_string(),
            ssh_ports: 2222..=2999,
            db_url: db_url.into(),
            docker_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
            actor_timeout: Duration::from_secs(180),
            pids_limit: 1024,
            stats_interval: Duration::from_secs(5),
            stats_concurrency: 32,
            stats_readings_per_second: 20,
            templates_dir: std::path::PathBuf::from("./templates"),
            data_dir: std::path::PathBuf::from("./data"),
            host_credentials_dir: None,
            ssh_host: "127.0.0.1".into(),
            ssh_bind: std::net::IpAddr::from([127, 0, 0, 1]),
            ssh_min_ttl: Duration::from_secs(360),
            faults: None,
        }
    }
}
