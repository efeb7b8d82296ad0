//! Server configuration, from `FLOTILLA_*` environment variables (the operating contract in
//! DESIGN.md). Every variable has a default except the admin password.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FLOTILLA_BIND` | `127.0.0.1:8000` | HTTP listen address (port 0 picks a free port) |
//! | `FLOTILLA_DATA_DIR` | `./data` | embedded database and the generated JWT secret |
//! | `FLOTILLA_DB` | `surrealkv://<data dir>/db` | store URL; `mem://` for throw-away runs |
//! | `FLOTILLA_ADMIN_PASSWORD` | — | creates or updates user `admin` at start |
//! | `FLOTILLA_JWT_SECRET` | generated, kept in the data dir | HS256 signing secret |
//! | `FLOTILLA_TOKEN_TTL_SECONDS` | `3600` | access token lifetime |
//! | `FLOTILLA_INSTANCE` | `default` | label on every Docker object; instances ignore each other |
//! | `FLOTILLA_AGENT_IMAGE` | `flotilla-agent:local` | image of every agent |
//! | `FLOTILLA_BUSYBOX` | `/bin/busybox` | static busybox the default image is built from |
//! | `FLOTILLA_SSH_PORTS` | `2222-2999` | SSH port range leased to agents |
//! | `FLOTILLA_SSH_BIND` | `127.0.0.1` | address the SSH gateway's per-agent listeners bind |
//! | `FLOTILLA_SSH_HOST` | `127.0.0.1` | host name or address shown to clients in ssh-access commands |
//! | `FLOTILLA_LOGIN_BURST` | `10` | failed logins allowed per client IP before 429 |
//! | `FLOTILLA_LOGIN_PER_MINUTE` | `10` | failed-login allowance regained per minute |
//! | `FLOTILLA_WORKERS` | CPU count | HTTP worker threads |
//! | `FLOTILLA_STATS_INTERVAL_MS` | `5000` | how often running agents' stats are sampled (≥ 100) |
//! | `FLOTILLA_STATS_CONCURRENCY` | `32` | most stats requests in flight against Docker at once |
//! | `FLOTILLA_STATS_READINGS_PER_SECOND` | `20` | most stats readings started per second; a fleet larger than this × the interval is sampled less often |
//! | `FLOTILLA_TEMPLATES_DIR` | `./templates` | agent templates, one folder each |
//! | `FLOTILLA_HOST_CREDENTIALS_DIR` | — | host credential files injected when an inject request names none (`<dir>/<runtime>/...`, `<dir>/common/...`) |
//! | `FLOTILLA_METRICS_TOKEN` | — | bearer token `/metrics` requires; without it `/metrics` is 404 |
//! | `FLOTILLA_METRICS_OPEN` | `false` | `true`: serve `/metrics` without a token (only when no token is set) |
//! | `FLOTILLA_API_RATE_PER_SECOND` | `50` | API requests per second allowed to each user (sustained) |
//! | `FLOTILLA_API_BURST` | `100` | API requests each user may make at once before the rate applies |
//! | `FLOTILLA_DOCKER_CONCURRENCY` | `16` | most Docker-mutating calls (create, start, stop, remove, ...) at once; the rest queue |

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use flotilla_actors::FleetConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub db_url: Option<String>,
    pub admin_password: Option<String>,
    pub jwt_secret: Option<String>,
    pub token_ttl: Duration,
    pub instance: String,
    pub agent_image: String,
    pub busybox: PathBuf,
    pub ssh_ports: RangeInclusive<u16>,
    /// Address the SSH gateway listens on (each agent on its own port).
    pub ssh_bind: IpAddr,
    /// Host clients reach the SSH gateway at, as shown in ssh-access answers.
    pub ssh_host: String,
    /// Shortest SSH key lifetime accepted: 6 minutes, the API's 0.1 h. Not an environment
    /// setting; tests lower it to watch a key expire.
    pub ssh_min_ttl: Duration,
    pub login_burst: u32,
    pub login_per_minute: u32,
    pub workers: usize,
    /// Largest JSON or form body accepted.
    pub max_body_bytes: usize,
    /// Stats sampling period.
    pub stats_interval: Duration,
    /// Most stats requests in flight against Docker at once.
    pub stats_concurrency: usize,
    /// Most stats readings started per second.
    pub stats_readings_per_second: u32,
    pub templates_dir: PathBuf,
    /// Host credential files for agents (`<dir>/<runtime>/...`, `<dir>/common/...`).
    pub host_credentials_dir: Option<PathBuf>,
    /// Bearer token `/metrics` requires (compared in constant time).
    pub metrics_token: Option<String>,
    /// Serve `/metrics` without a token when none is set (else it is 404).
    pub metrics_open: bool,
    /// Sustained API requests per second per user.
    pub api_rate_per_second: u32,
    /// API requests a user may make at once.
    pub api_burst: u32,
    /// Most Docker-mutating calls in flight at once, fleet-wide.
    pub docker_concurrency: usize,
    /// Test-only fault injection (`flotilla_actors::faults`). Not an environment setting:
    /// [`Config::from_env`] always leaves it `None`; only tests that build a `Config` by hand
    /// set it.
    pub test_faults: Option<flotilla_actors::faults::FaultPlan>,
}

#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./data"),
            db_url: None,
            admin_password: None,
            jwt_secret: None,
            token_ttl: Duration::from_secs(3600),
            instance: "default".into(),
            agent_image: flotilla_actors::runtime::image::DEFAULT_IMAGE.into(),
            busybox: PathBuf::from(flotilla_actors::runtime::image::DEFAULT_BUSYBOX),
            ssh_ports: 2222..=2999,
            ssh_bind: IpAddr::from([127, 0, 0, 1]),
            ssh_host: "127.0.0.1".into(),
            ssh_min_ttl: Duration::from_secs(360),
            login_burst: 10,
            login_per_minute: 10,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_body_bytes: 1024 * 1024,
            stats_interval: Duration::from_secs(5),
            stats_concurrency: 32,
            stats_readings_per_second: 20,
            templates_dir: PathBuf::from("./templates"),
            host_credentials_dir: None,
            metrics_token: None,
            metrics_open: false,
            api_rate_per_second: 50,
            api_burst: 100,
            docker_concurrency: flotilla_actors::runtime::docker::DEFAULT_MUTATION_LIMIT,
            test_faults: None,
        }
    }
}

impl Config {
    /// Read the environment over the defaults.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Config::default();
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        let parse = |var: &'static str, v: String| -> Result<u64, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError {
                var,
                reason: format!("'{v}' is not a non-negative integer"),
            })
        };
        if let Some(v) = get("FLOTILLA_BIND") {
            c.bind = v.parse().map_err(|_| ConfigError {
                var: "FLOTILLA_BIND",
                reason: format!("'{v}' is not an address like 127.0.0.1:8000"),
            })?;
        }
        if let Some(v) = get("FLOTILLA_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        c.db_url = get("FLOTILLA_DB");
        c.admin_password = get("FLOTILLA_ADMIN_PASSWORD");
        c.jwt_secret = get("FLOTILLA_JWT_SECRET");
        if let Some(v) = get("FLOTILLA_TOKEN_TTL_SECONDS") {
            let secs = parse("FLOTILLA_TOKEN_TTL_SECONDS", v)?;
            if secs == 0 {
                return Err(ConfigError {
                    var: "FLOTILLA_TOKEN_TTL_SECONDS",
                    reason: "must be positive".into(),
                });
            }
            c.token_ttl = Duration::from_secs(secs);
        }
        if let Some(v) = get("FLOTILLA_INSTANCE") {
            if !v
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
            {
                return Err(ConfigError {
                    var: "FLOTILLA_INSTANCE",
                    reason: "may contain only letters, digits, '-', '_' and '.'".into(),
                });
            }
            c.instance = v;
        }
        if let Some(v) = get("FLOTILLA_AGENT_IMAGE") {
            c.agent_image = v;
        }
        if let Some(v) = get("FLOTILLA_BUSYBOX") {
            c.busybox = PathBuf::from(v);
        }
        if let Some(v) = get("FLOTILLA_SSH_PORTS") {
            c.ssh_ports = parse_port_range(&v).ok_or_else(|| ConfigError {
                var: "FLOTILLA_SSH_PORTS",
                reason: format!("'{v}' is not a port range like 2222-2999"),
            })?;
        }
        if let Some(v) = get("FLOTILLA_SSH_BIND") {
            c.ssh_bind = v.trim().parse().map_err(|_| ConfigError {
                var: "FLOTILLA_SSH_BIND",
                reason: format!("'{v}' is not an IP address like 127.0.0.1 or 0.0.0.0"),
            })?;
        }
        if let Some(v) = get("FLOTILLA_SSH_HOST") {
            let host = v.trim();
            if host
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '@')
            {
                return Err(ConfigError {
                    var: "FLOTILLA_SSH_HOST",
                    reason: format!("'{v}' is not a host name or address"),
                });
            }
            c.ssh_host = host.to_string();
        }
        if let Some(v) = get("FLOTILLA_LOGIN_BURST") {
            c.login_burst = parse("FLOTILLA_LOGIN_BURST", v)?.clamp(1, u64::from(u32::MAX)) as u32;
        }
        if let Some(v) = get("FLOTILLA_LOGIN_PER_MINUTE") {
            c.login_per_minute =
                parse("FLOTILLA_LOGIN_PER_MINUTE", v)?.clamp(1, u64::from(u32::MAX)) as u32;
        }
        if let Some(v) = get("FLOTILLA_TEMPLATES_DIR") {
            c.templates_dir = PathBuf::from(v);
        }
        c.host_credentials_dir = get("FLOTILLA_HOST_CREDENTIALS_DIR").map(PathBuf::from);
        c.metrics_token = get("FLOTILLA_METRICS_TOKEN").map(|v| v.trim().to_string());
        if let Some(v) = get("FLOTILLA_METRICS_OPEN") {
            c.metrics_open = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError {
                        var: "FLOTILLA_METRICS_OPEN",
                        reason: format!("'{v}' is not true or false"),
                    });
                }
            };
        }
        for (var, slot) in [
            ("FLOTILLA_API_RATE_PER_SECOND", &mut c.api_rate_per_second),
            ("FLOTILLA_API_BURST", &mut c.api_burst),
        ] {
            if let Some(v) = get(var) {
                let n = parse(var, v)?;
                if n == 0 {
                    return Err(ConfigError {
                        var,
                        reason: "must be positive".into(),
                    });
                }
                *slot = n.min(u64::from(u32::MAX)) as u32;
            }
        }
        if let Some(v) = get("FLOTILLA_DOCKER_CONCURRENCY") {
            c.docker_concurrency = parse("FLOTILLA_DOCKER_CONCURRENCY", v)?.clamp(1, 1024) as usize;
        }
        if let Some(v) = get("FLOTILLA_WORKERS") {
            c.workers = parse("FLOTILLA_WORKERS", v)?.clamp(1, 256) as usize;
        }
        if let Some(v) = get("FLOTILLA_STATS_INTERVAL_MS") {
            let ms = parse("FLOTILLA_STATS_INTERVAL_MS", v)?;
            if ms < 100 {
                return Err(ConfigError {
                    var: "FLOTILLA_STATS_INTERVAL_MS",
                    reason: "must be at least 100".into(),
                });
            }
            c.stats_interval = Duration::from_millis(ms);
        }
        if let Some(v) = get("FLOTILLA_STATS_CONCURRENCY") {
            c.stats_concurrency = parse("FLOTILLA_STATS_CONCURRENCY", v)?.clamp(1, 256) as usize;
        }
        if let Some(v) = get("FLOTILLA_STATS_READINGS_PER_SECOND") {
            c.stats_readings_per_second =
                parse("FLOTILLA_STATS_READINGS_PER_SECOND", v)?.clamp(1, 10_000) as u32;
        }
        Ok(c)
    }

    /// The store URL: `FLOTILLA_DB`, else SurrealKV on disk in the data dir.
    pub fn store_url(&self) -> String {
        match &self.db_url {
            Some(url) => url.clone(),
            None => {
                let dir = std::path::absolute(self.data_dir.join("db"))
                    .unwrap_or_else(|_| self.data_dir.join("db"));
                format!("surrealkv://{}", dir.display())
            }
        }
    }

    /// The runtime's settings.
    pub fn fleet(&self) -> FleetConfig {
        let mut fleet = FleetConfig::new(self.instance.clone(), self.store_url());
        fleet.agent_image = self.agent_image.clone();
        fleet.ssh_ports = self.ssh_ports.clone();
        fleet.stats_interval = self.stats_interval;
        fleet.stats_concurrency = self.stats_concurrency;
        fleet.stats_readings_per_second = self.stats_readings_per_second;
        fleet.templates_dir = self.templates_dir.clone();
        fleet.host_credentials_dir = self.host_credentials_dir.clone();
        fleet.data_dir = self.data_dir.clone();
        fleet.ssh_bind = self.ssh_bind;
        fleet.ssh_host = self.ssh_host.clone();
        fleet.ssh_min_ttl = self.ssh_min_ttl;
        fleet.faults = self.test_faults.clone();
        fleet
    }
}

fn parse_port_range(v: &str) -> Option<RangeInclusive<u16>> {
    let (a, b) = v.trim().split_once('-')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b).then_some(a..=b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_operating_contract() {
        let c = from(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.instance, "default");
        assert_eq!(c.agent_image, "flotilla-agent:local");
        assert_eq!(c.ssh_ports, 2222..=2999);
        assert!(c.store_url().starts_with("surrealkv://"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(
            from(&[("FLOTILLA_SSH_PORTS", "9-1")]).unwrap_err().var,
            "FLOTILLA_SSH_PORTS"
        );
        assert_eq!(
            from(&[("FLOTILLA_BIND", "nope")]).unwrap_err().var,
            "FLOTILLA_BIND"
        );
        assert_eq!(
            from(&[("FLOTILLA_INSTANCE", "a b")]).unwrap_err().var,
            "FLOTILLA_INSTANCE"
        );
        let c = from(&[
            ("FLOTILLA_DB", "mem://"),
            ("FLOTILLA_SSH_PORTS", "3000-3010"),
        ])
        .unwrap();
        assert_eq!(c.store_url(), "mem://");
        assert_eq!(c.ssh_ports, 3000..=3010);
    }

    #[test]
    fn ssh_gateway_settings_reach_the_fleet() {
        let fleet = from(&[]).unwrap().fleet();
        assert_eq!(fleet.ssh_bind.to_string(), "127.0.0.1");
        assert_eq!(fleet.ssh_host, "127.0.0.1");
        assert_eq!(fleet.ssh_min_ttl, Duration::from_secs(360));
        let fleet = from(&[
            ("FLOTILLA_SSH_BIND", "0.0.0.0"),
            ("FLOTILLA_SSH_HOST", "agents.example.com"),
            ("FLOTILLA_DATA_DIR", "/var/lib/flotilla"),
        ])
        .unwrap()
        .fleet();
        assert_eq!(fleet.ssh_bind.to_string(), "0.0.0.0");
        assert_eq!(fleet.ssh_host, "agents.example.com");
        assert_eq!(fleet.data_dir, PathBuf::from("/var/lib/flotilla"));
        for (var, value) in [
            ("FLOTILLA_SSH_BIND", "localhost:22"),
            ("FLOTILLA_SSH_HOST", "a b"),
        ] {
            assert_eq!(from(&[(var, value)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn metrics_rate_limit_and_docker_settings() {
        let c = from(&[]).unwrap();
        assert_eq!(c.metrics_token, None);
        assert!(!c.metrics_open);
        assert_eq!((c.api_rate_per_second, c.api_burst), (50, 100));
        assert_eq!(c.docker_concurrency, 16);
        let c = from(&[
            ("FLOTILLA_METRICS_TOKEN", " s3cret "),
            ("FLOTILLA_METRICS_OPEN", "TRUE"),
            ("FLOTILLA_API_RATE_PER_SECOND", "5"),
            ("FLOTILLA_API_BURST", "7"),
            ("FLOTILLA_DOCKER_CONCURRENCY", "4"),
        ])
        .unwrap();
        assert_eq!(c.metrics_token.as_deref(), Some("s3cret"));
        assert!(c.metrics_open);
        assert_eq!((c.api_rate_per_second, c.api_burst), (5, 7));
        assert_eq!(c.docker_concurrency, 4);
        for (var, value) in [
            ("FLOTILLA_METRICS_OPEN", "maybe"),
            ("FLOTILLA_API_RATE_PER_SECOND", "0"),
            ("FLOTILLA_API_BURST", "-1"),
            ("FLOTILLA_DOCKER_CONCURRENCY", "x"),
        ] {
            assert_eq!(from(&[(var, value)]).unwrap_err().var, var);
        }
    }

    #[test]
    fn stats_sampling_settings_reach_the_fleet() {
        let fleet = from(&[]).unwrap().fleet();
        assert_eq!(fleet.stats_interval, Duration::from_secs(5));
        assert_eq!(fleet.stats_concurrency, 32);
        assert_eq!(fleet.stats_readings_per_second, 20);
        let fleet = from(&[
            ("FLOTILLA_STATS_INTERVAL_MS", "1500"),
            ("FLOTILLA_STATS_CONCURRENCY", "4"),
            ("FLOTILLA_STATS_READINGS_PER_SECOND", "50"),
        ])
        .unwrap()
        .fleet();
        assert_eq!(fleet.stats_interval, Duration::from_millis(1500));
        assert_eq!(fleet.stats_concurrency, 4);
        assert_eq!(fleet.stats_readings_per_second, 50);
        assert_eq!(
            from(&[("FLOTILLA_STATS_INTERVAL_MS", "10")])
                .unwrap_err()
                .var,
            "FLOTILLA_STATS_INTERVAL_MS"
        );
    }

    #[test]
    fn the_host_credentials_dir_reaches_the_fleet() {
        assert_eq!(from(&[]).unwrap().fleet().host_credentials_dir, None);
        let fleet = from(&[("FLOTILLA_HOST_CREDENTIALS_DIR", "/etc/flotilla/credentials")])
            .unwrap()
            .fleet();
        assert_eq!(
            fleet.host_credentials_dir,
            Some(PathBuf::from("/etc/flotilla/credentials"))
        );
    }
}
