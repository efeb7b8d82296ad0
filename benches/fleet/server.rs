//! The server under test: `flotilla serve` from the same optimised build as this benchmark, run
//! as a child process on a loopback port, with its own instance label, an on-disk store in a
//! temporary data dir, and rate limits raised out of the way. Its output goes to a log file.
//!
//! The child runs in a process group of its own, so a Ctrl-C in the terminal reaches the
//! benchmark only, which then stops the server and cleans up in order. Its pid is written to a
//! file, so a run killed outright (SIGKILL) is cleaned up by the next one.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::Value;
use tokio::process::{Child, Command};

pub const ADMIN_PASSWORD: &str = "fleet-bench-admin-password";
pub const JWT_SECRET: &str = "fleet-bench-secret-0123456789abcdef";
pub const METRICS_TOKEN: &str = "fleet-bench-metrics-token-0123456789";

/// How the server is configured (beyond what is fixed above).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub instance: String,
    /// `FLOTILLA_DOCKER_CONCURRENCY`.
    pub docker_concurrency: usize,
    /// SSH ports leased to agents (one each; never listened on in the benchmark).
    pub ssh_ports: (u16, u16),
    /// Where the server's log, data dir and pid file go.
    pub work_dir: PathBuf,
    /// Extra environment (experiments), applied last.
    pub env: Vec<(String, String)>,
}

/// Resident memory of the server, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// `VmRSS`: everything resident, the executable's mapped pages included.
    pub rss: u64,
    /// `VmHWM`: the peak of `VmRSS`.
    pub peak: u64,
    /// `RssAnon`: the heap and other private memory.
    pub anon: u64,
    /// `RssFile`: mapped files, mostly the executable's code (shared, reclaimable).
    pub file: u64,
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub base: String,
    pid_file: PathBuf,
    _data: tempfile::TempDir,
    pub log: PathBuf,
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Terminate a server left running by an earlier run that was killed outright.
pub fn kill_stale(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let pid = text.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    if cmdline.contains("flotilla") && cmdline.contains("serve") {
        eprintln!("stopping a flotilla server left by an earlier run (pid {pid})");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    let _ = std::fs::remove_file(pid_file);
}

impl Server {
    /// Start the server and wait until `/health` answers.
    pub async fn start(binary: &Path, settings: &ServerSettings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.work_dir)?;
        let pid_file = settings.work_dir.join("fleet-server.pid");
        kill_stale(&pid_file);
        let data = tempfile::Builder::new()
            .prefix("flotilla-fleet-bench-")
            .tempdir()?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = settings.work_dir.join("fleet-server.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("FLEET_BENCH_RUST_LOG")
                    .unwrap_or("info,surrealdb=warn,surrealkv=warn".into()),
            )
            .env("FLOTILLA_BIND", addr.to_string())
            .env("FLOTILLA_DATA_DIR", data.path())
            .env("FLOTILLA_INSTANCE", &settings.instance)
            .env("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FLOTILLA_JWT_SECRET", JWT_SECRET)
            .env("FLOTILLA_TOKEN_TTL_SECONDS", "86400")
            .env("FLOTILLA_METRICS_TOKEN", METRICS_TOKEN)
            .env("FLOTILLA_API_RATE_PER_SECOND", "1000000000")
            .env("FLOTILLA_API_BURST", "1000000000")
            .env("FLOTILLA_LOGIN_BURST", "1000")
            .env("FLOTILLA_LOGIN_PER_MINUTE", "1000")
            .env(
                "FLOTILLA_DOCKER_CONCURRENCY",
                settings.docker_concurrency.to_string(),
            )
            .env(
                "FLOTILLA_SSH_PORTS",
                format!("{}-{}", settings.ssh_ports.0, settings.ssh_ports.1),
            )
            .env("FLOTILLA_TEMPLATES_DIR", data.path().join("templates"))
            .envs(settings.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("the server exited at once"))?;
        std::fs::write(&pid_file, pid.to_string())?;
        let server = Self {
            child,
            pid,
            addr,
            base: format!("http://{addr}"),
            pid_file,
            _data: data,
            log,
        };
        server.wait_healthy(Duration::from_secs(300)).await?;
        Ok(server)
    }

    async fn wait_healthy(&self, limit: Duration) -> anyhow::Result<()> {
        let client = Client::new();
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(r) = client.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the server did not answer /health within {} s (log: {})",
                    limit.as_secs(),
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Log in as the admin.
    pub async fn admin_token(&self, client: &Client) -> anyhow::Result<String> {
        let response = client
            .post(format!("{}/api/token", self.base))
            .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "login failed: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no access_token in {body}"))
    }

    /// The server's memory now, from `/proc/<pid>/status`.
    pub fn rss(&self) -> anyhow::Result<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        let rss = Rss {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        };
        anyhow::ensure!(rss.rss > 0, "no VmRSS in /proc/{}/status", self.pid);
        Ok(rss)
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        process_cpu_seconds(&format!("/proc/{}/stat", self.pid))
    }

    /// Stop the server: SIGTERM (it drains and stops its actors), SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// CPU time (user + system, seconds) of the process whose `stat` file is `path`. Clock ticks are
/// taken as 100 per second (`USER_HZ` on Linux).
pub fn process_cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Busy CPU time of the whole machine so far (every CPU, all but idle and iowait), in seconds.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(busy as f64 / 100.0)
}
