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
    /// Folder of agent templates (one sub-folder per template).
    pub templates_dir: std::path::PathBuf,
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
            templates_dir: std::path::PathBuf::from("./templates"),
        }
    }
}
