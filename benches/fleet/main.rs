//! The fleet benchmark: flotilla against the real Docker daemon, in one run, on one machine.
//!
//! ```sh
//! cargo bench --bench fleet                       # N = 100 agents, deploy at C = 8 and 32
//! cargo bench --bench fleet -- --agents 1000      # the README figure
//! cargo bench --bench fleet -- --help             # every knob
//! ```
//!
//! It starts `flotilla serve` (the binary of this same optimised build) as a child process on a
//! loopback port with its own `FLOTILLA_INSTANCE`, an on-disk store in a temporary directory and
//! the per-user rate limit raised out of the way (see [`server`]), then measures:
//!
//! - **deploy** — for each concurrency C: create+start N agents through the REST API, and the
//!   same N containers directly through bollard ([`raw`]); then stop, start and delete all of
//!   them both ways. Wall time, throughput, p50/p95/p99 per operation, flotilla ÷ raw;
//! - **single** — stop and start one at a time (C = 1) both ways: the latency of one call;
//! - **read** — with N agents running: `GET /api/agents`, `GET /api/agents/{name}`,
//!   `GET /api/agents/context-stats` and `/metrics` over 64 connections, at the maximum rate
//!   and at a fixed rate (half the maximum unless `--rate`), with the project's own load
//!   generator ([`load`]);
//! - **mixed** — `GET /api/agents/{name}` at a fixed rate, without and then during a
//!   create/delete churn: read p99 with and without it;
//! - **memory** — the server's RSS idle, with N agents, and after the read load.
//!
//! Everything goes to `target/bench/fleet.json` (`$CARGO_TARGET_DIR/bench/fleet.json` when the
//! target directory is elsewhere; `--out` to choose) and a table on stdout; a run that is
//! interrupted or fails part-way writes what it measured so far, with `incomplete` saying why. The server's log is
//! beside it (`fleet-server.log`).
//!
//! **Clean-up.** The server's objects carry `flotilla.instance=fleet-bench`, the raw ones
//! `fleet-bench-raw`. Both are removed by label before the run, after it, and when it is
//! interrupted (Ctrl-C or SIGTERM stop the run, then the server, then clean up; a second Ctrl-C
//! does not cut the clean-up short). A run killed with SIGKILL leaves them for the next run's
//! start-up clean-up, which also stops a server it left behind. Run one benchmark at a time per
//! Docker daemon.

// Benchmarks are not product code: failing fast on a broken set-up is what they should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod load;
mod raw;
mod server;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bollard::Docker;
use clap::Parser;
use hyper::Uri;
use hyper::header::HeaderValue;
use reqwest::Client;
use serde::Serialize;
use serde_json::{Value, json};

use load::{LoadResult, Rate, Target};
use server::{Server, ServerSettings};
use stats::{Batch, Ratio};

/// Instance label of the server under test.
const INSTANCE: &str = "fleet-bench";
/// Instance label of the raw (bollard) containers.
const RAW_INSTANCE: &str = "fleet-bench-raw";
/// SSH ports the server leases to agents (never listened on here).
const SSH_PORTS: (u16, u16) = (40_000, 44_999);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "fleet",
    about = "flotilla's fleet benchmark against the real Docker daemon"
)]
struct Args {
    /// Agents deployed each way (flotilla and raw).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Concurrencies of the deploy, stop, start and delete phases (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    concurrency: Vec<usize>,
    /// The server's FLOTILLA_DOCKER_CONCURRENCY (its limit on Docker-mutating calls at once).
    #[arg(long, default_value_t = 16)]
    docker_concurrency: usize,
    /// Connections of the read load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds of each read-load run (and of each half of the mixed run).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Fixed rate of the read load, requests per second (default: half the endpoint's max).
    #[arg(long)]
    rate: Option<f64>,
    /// Fixed rate of the reads in the mixed run, requests per second.
    #[arg(long, default_value_t = 1000.0)]
    mixed_rate: f64,
    /// Create/delete loops running at once during the churn.
    #[arg(long, default_value_t = 4)]
    churn_concurrency: usize,
    /// Agents stopped and started one at a time in the single-call phase.
    #[arg(long, default_value_t = 20)]
    single: usize,
    /// CPU limit of every agent.
    #[arg(long, default_value = "0.5")]
    cpu: String,
    /// Memory limit of every agent.
    #[arg(long, default_value = "64m")]
    memory: String,
    /// Extra environment of the server, `NAME=value` (repeatable): for experiments, e.g.
    /// `--server-env FLOTILLA_STATS_INTERVAL_MS=600000`. Recorded in the JSON.
    #[arg(long = "server-env", value_name = "NAME=value")]
    server_env: Vec<String>,
    /// Skip the raw (bollard) side of the deploy rounds and the single-call phase.
    #[arg(long)]
    skip_raw: bool,
    /// Skip the stop, start and delete of flotilla's agents (they stay until the clean-up at
    /// the end; use with a single concurrency).
    #[arg(long)]
    skip_lifecycle: bool,
    /// Skip the read load.
    #[arg(long)]
    skip_read: bool,
    /// Skip the mixed (churn) run.
    #[arg(long)]
    skip_mixed: bool,
    /// Where to write the JSON (default: <target dir>/bench/fleet.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The default output directory: `<target dir>/bench`.
fn bench_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp` for benchmarks.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("bench")
}

// ---- the REST API, for the control-plane operations --------------------------------------

#[derive(Clone)]
struct Api {
    client: Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            // Read the answer: the operation is done when the client has it.
            response.bytes().await.map_err(|e| e.to_string())?;
            Ok(())
        } else {
            let text = response.text().await.unwrap_or_default();
            Err(format!("{path}: {status} {text}"))
        }
    }

    async fn create(&self, name: &str, cpu: &str, memory: &str) -> Result<(), String> {
        let body = json!({"name": name, "resources": {"cpu": cpu, "memory": memory}});
        self.call(reqwest::Method::POST, "/api/agents", Some(body))
            .await
    }

    async fn stop(&self, name: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/agents/{name}/stop"),
            None,
        )
        .await
    }

    async fn start(&self, name: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::POST,
            &format!("/api/agents/{name}/start"),
            None,
        )
        .await
    }

    async fn delete(&self, name: &str) -> Result<(), String> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/api/agents/{name}"),
            None,
        )
        .await
    }
}

// ---- the report ----------------------------------------------------------------------------

/// Create+start, stop, start, delete of N agents, one way.
#[derive(Debug, Clone, Default, Serialize)]
struct Lifecycle {
    create_start: Batch,
    stop: Batch,
    start: Batch,
    delete: Batch,
}

#[derive(Debug, Clone, Default, Serialize)]
struct LifecycleRatio {
    create_start: Ratio,
    stop: Ratio,
    start: Ratio,
    delete: Ratio,
}

impl LifecycleRatio {
    fn of(f: &Lifecycle, r: &Lifecycle) -> Self {
        Self {
            create_start: Ratio::of(&f.create_start, &r.create_start),
            stop: Ratio::of(&f.stop, &r.stop),
            start: Ratio::of(&f.start, &r.start),
            delete: Ratio::of(&f.delete, &r.delete),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct DeployRound {
    concurrency: usize,
    raw: Lifecycle,
    flotilla: Lifecycle,
    /// flotilla ÷ raw.
    ratio: LifecycleRatio,
    /// Create+start made directly with the Docker calls flotilla's create makes
    /// ([`raw::create_and_start_synced`]).
    raw_same_calls: Batch,
    /// flotilla's create+start ÷ `raw_same_calls`.
    create_start_same_calls: Ratio,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Single {
    agents: usize,
    raw_stop: Batch,
    raw_start: Batch,
    /// The raw start preceded by the archive read and write flotilla's start makes
    /// ([`raw::start_synced`]).
    raw_start_same_calls: Batch,
    flotilla_stop: Batch,
    flotilla_start: Batch,
    stop_ratio: Ratio,
    /// flotilla's start ÷ a bare Docker start.
    start_ratio: Ratio,
    /// flotilla's start ÷ the same Docker calls made directly.
    start_ratio_same_calls: Ratio,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Mixed {
    read_endpoint: String,
    read_rate: f64,
    without_churn: LoadResult,
    /// During a create/delete churn through flotilla.
    with_churn: LoadResult,
    /// During the same churn made directly in Docker (flotilla idle): the control.
    with_raw_churn: LoadResult,
    churn_concurrency: usize,
    churn_creates: Batch,
    churn_deletes: Batch,
    raw_churn_creates: Batch,
    /// Read p99 with churn ÷ without: the target is ≤ 2.
    p99_ratio: f64,
    /// Read p99 with the raw churn ÷ without.
    p99_ratio_raw_churn: f64,
}

/// Which way a churn creates and deletes agents.
#[derive(Debug, Clone, Copy)]
enum Way {
    Flotilla,
    Raw,
}

/// The server's memory (`/proc/<pid>/status`). `rss` is `VmRSS`, everything resident; `anon`
/// is `RssAnon`, its private memory (heap), without the executable's mapped code (`RssFile`).
#[derive(Debug, Clone, Default, Serialize)]
struct Memory {
    rss_idle_bytes: u64,
    rss_with_agents_bytes: u64,
    rss_after_read_load_bytes: u64,
    peak_rss_bytes: u64,
    anon_idle_bytes: u64,
    anon_with_agents_bytes: u64,
    /// Mapped files (the executable) with N agents.
    file_with_agents_bytes: u64,
    /// (RSS with N agents − RSS idle) ÷ N.
    per_agent_bytes: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Scrape {
    scrapes: usize,
    latency: stats::Latency,
    body_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
struct TargetCheck {
    name: String,
    target: String,
    measured: String,
    met: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Report {
    machine: Value,
    settings: Value,
    deploy: Vec<DeployRound>,
    single: Single,
    read: Vec<LoadResult>,
    metrics_scrape: Scrape,
    mixed: Mixed,
    memory: Memory,
    targets: Vec<TargetCheck>,
    /// The server's own account of its Docker calls over the whole run (from its
    /// `flotilla_docker_call_duration_seconds` histogram): calls and mean duration by operation.
    docker_calls: Value,
    cleanup: Value,
    total_seconds: f64,
    /// Why the run ended early (interrupted, or a phase failed); absent when it completed.
    /// The phases before it are in the report all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    incomplete: Option<String>,
}

fn machine(docker_version: &bollard::models::SystemVersion) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let mem_total_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_bytes": mem_total_kb * 1024,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "docker_version": docker_version.version,
        "docker_api_version": docker_version.api_version,
    })
}

// ---- phases ----------------------------------------------------------------------------------

/// Operations of the churn as they finish: duration (µs) and outcome.
type Timed = Mutex<Vec<(u32, Result<(), String>)>>;

struct Bench {
    args: Args,
    api: Api,
    docker: Docker,
    server: Server,
    image: String,
}

impl Bench {
    fn names(&self, prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i:04}")).collect()
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    /// `n` raw agents (the bench's image and limits) named by `name`.
    fn raw_agents(
        &self,
        n: usize,
        name: impl Fn(usize) -> String,
    ) -> anyhow::Result<Vec<raw::RawAgent>> {
        (0..n)
            .map(|i| {
                raw::raw_agent(
                    RAW_INSTANCE,
                    &self.image,
                    &name(i),
                    0,
                    &self.args.cpu,
                    &self.args.memory,
                )
                .map_err(anyhow::Error::msg)
            })
            .collect()
    }

    /// Create+start, stop, start and delete `n` raw agents at `c`.
    async fn raw_lifecycle(&self, n: usize, c: usize, prefix: &str) -> anyhow::Result<Lifecycle> {
        let agents = self.raw_agents(n, |i| format!("{prefix}-{i:04}"))?;
        let ids: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
        let docker = &self.docker;
        let create_start = stats::batch(agents.iter().enumerate().collect(), c, |(i, a)| {
            let ids = &ids;
            async move {
                let id = raw::create_and_start(docker, a).await?;
                ids.lock().unwrap().insert(i, id);
                Ok(())
            }
        })
        .await;
        self.settle().await;
        let made: Vec<(usize, String)> = {
            let mut v: Vec<_> = ids.lock().unwrap().clone().into_iter().collect();
            v.sort();
            v
        };
        let stop = stats::batch(made.clone(), c, |(_, id)| async move {
            raw::stop(docker, &id).await
        })
        .await;
        self.settle().await;
        let start = stats::batch(made.clone(), c, |(_, id)| async move {
            raw::start(docker, &id).await
        })
        .await;
        self.settle().await;
        let delete = stats::batch(made, c, |(i, id)| {
            let volumes = agents[i].volumes.clone();
            async move { raw::delete(docker, &id, &volumes).await }
        })
        .await;
        self.settle().await;
        Ok(Lifecycle {
            create_start,
            stop,
            start,
            delete,
        })
    }

    /// Create+start `n` raw agents at `c` with the calls flotilla makes, then delete them
    /// (untimed).
    async fn raw_create_same_calls(
        &self,
        n: usize,
        c: usize,
        prefix: &str,
    ) -> anyhow::Result<Batch> {
        let agents = self.raw_agents(n, |i| format!("{prefix}-{i:04}"))?;
        let ids: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
        let docker = &self.docker;
        let create_start = stats::batch(agents.iter().enumerate().collect(), c, |(i, a)| {
            let ids = &ids;
            async move {
                let id = raw::create_and_start_synced(docker, a).await?;
                ids.lock().unwrap().push((i, id));
                Ok(())
            }
        })
        .await;
        let made = ids.into_inner().unwrap();
        let _ = stats::batch(made, c, |(i, id)| {
            let volumes = agents[i].volumes.clone();
            async move { raw::delete(docker, &id, &volumes).await }
        })
        .await;
        self.settle().await;
        Ok(create_start)
    }

    async fn create_all(&self, names: &[String], c: usize) -> Batch {
        let api = &self.api;
        let (cpu, memory) = (&self.args.cpu, &self.args.memory);
        stats::batch(names.to_vec(), c, |name| async move {
            api.create(&name, cpu, memory).await
        })
        .await
    }

    async fn for_all<F, Fut>(&self, names: &[String], c: usize, op: F) -> Batch
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        stats::batch(names.to_vec(), c, op).await
    }

    async fn load(
        &self,
        endpoint: &str,
        paths: Vec<String>,
        token: &str,
        rate: Rate,
        seconds: u64,
    ) -> LoadResult {
        let target = Arc::new(Target {
            addr: self.server.addr,
            paths: paths.iter().map(|p| p.parse::<Uri>().unwrap()).collect(),
            authorization: HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        });
        let cpu = || {
            (
                self.server.cpu_seconds(),
                server::process_cpu_seconds("/proc/self/stat"),
                server::machine_busy_seconds(),
            )
        };
        let before = cpu();
        let mut result = load::run(
            endpoint,
            target,
            self.args.connections,
            rate,
            Duration::from_secs(seconds),
        )
        .await;
        let after = cpu();
        if let ((Some(s0), Some(c0), Some(m0)), (Some(s1), Some(c1), Some(m1))) = (before, after) {
            let secs = result.duration_s;
            result.server_cpu_cores = (s1 - s0) / secs;
            result.client_cpu_cores = (c1 - c0) / secs;
            result.others_cpu_cores = ((m1 - m0) - (s1 - s0) - (c1 - c0)).max(0.0) / secs;
        }
        result
    }

    /// Max-rate then fixed-rate load on every read endpoint.
    async fn read_load(&self, names: &[String], report: &mut Report) {
        let token = self.api.token.clone();
        let endpoints: Vec<(&str, Vec<String>, String)> = vec![
            (
                "GET /api/agents",
                vec!["/api/agents".to_string()],
                token.clone(),
            ),
            (
                "GET /api/agents/{name}",
                names.iter().map(|n| format!("/api/agents/{n}")).collect(),
                token.clone(),
            ),
            (
                "GET /api/agents/context-stats",
                vec!["/api/agents/context-stats".to_string()],
                token.clone(),
            ),
            (
                "GET /metrics",
                vec!["/metrics".to_string()],
                server::METRICS_TOKEN.to_string(),
            ),
        ];
        for (endpoint, paths, token) in endpoints {
            // Warm-up, not recorded.
            let _ = self
                .load(endpoint, paths.clone(), &token, Rate::Max, 1)
                .await;
            let max = self
                .load_and_report(endpoint, paths.clone(), &token, Rate::Max, "max")
                .await;
            let rate = self.args.rate.unwrap_or((max.per_second / 2.0).max(1.0));
            let fixed = self
                .load_and_report(endpoint, paths.clone(), &token, Rate::Fixed(rate), "fixed")
                .await;
            report.read.push(max);
            report.read.push(fixed);
            // A target of the form "≥ R req/s with p99 ≤ L" is checked at R, open loop: the p99
            // of a closed loop at full speed is mostly its own queue.
            if let Some((rate, _)) = target_load(endpoint, self.args.agents) {
                let at_target = self
                    .load_and_report(
                        endpoint,
                        paths,
                        &token,
                        Rate::Fixed(rate),
                        "at the target rate",
                    )
                    .await;
                report.read.push(at_target);
            }
        }
    }

    /// [`Self::load`] for `--seconds`, with a progress line labelled `mode`.
    async fn load_and_report(
        &self,
        endpoint: &str,
        paths: Vec<String>,
        token: &str,
        rate: Rate,
        mode: &str,
    ) -> LoadResult {
        let result = self
            .load(endpoint, paths, token, rate, self.args.seconds)
            .await;
        eprintln!(
            "  {endpoint:<32} {mode:<5} {:>9.0} req/s  p99 {:>8.2} ms  errors {}",
            result.per_second, result.latency.p99_ms, result.errors
        );
        result
    }

    /// Sequential scrapes of /metrics: what one Prometheus scrape costs.
    async fn scrape(&self) -> Scrape {
        let mut latencies = Vec::new();
        let mut body_bytes = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let response = self
                .api
                .client
                .get(format!("{}/metrics", self.api.base))
                .bearer_auth(server::METRICS_TOKEN)
                .send()
                .await;
            if let Ok(r) = response
                && let Ok(body) = r.bytes().await
            {
                latencies.push(stats::micros(t.elapsed()));
                body_bytes = body.len();
            }
        }
        Scrape {
            scrapes: latencies.len(),
            latency: stats::Latency::from_micros(latencies),
            body_bytes,
        }
    }

    /// Fixed-rate single-agent reads without churn, during a create/delete churn through
    /// flotilla, and during the same churn made directly in Docker (the control: it loads the
    /// daemon and the CPUs the same way, but flotilla does nothing).
    async fn mixed(&self, names: &[String]) -> Mixed {
        let endpoint = "GET /api/agents/{name}";
        let paths: Vec<String> = names.iter().map(|n| format!("/api/agents/{n}")).collect();
        let token = self.api.token.clone();
        let rate = self.args.mixed_rate;
        let seconds = self.args.seconds;
        let without = self
            .load(endpoint, paths.clone(), &token, Rate::Fixed(rate), seconds)
            .await;
        let (with, churn_creates, churn_deletes) =
            self.churn(Way::Flotilla, endpoint, &paths, &token).await;
        let (with_raw, raw_churn_creates, _) = if self.args.skip_raw {
            (LoadResult::default(), Batch::default(), Batch::default())
        } else {
            self.churn(Way::Raw, endpoint, &paths, &token).await
        };
        let ratio = |r: &LoadResult| {
            if without.latency.p99_ms > 0.0 {
                r.latency.p99_ms / without.latency.p99_ms
            } else {
                0.0
            }
        };
        Mixed {
            read_endpoint: endpoint.to_string(),
            read_rate: rate,
            churn_concurrency: self.args.churn_concurrency,
            p99_ratio: ratio(&with),
            p99_ratio_raw_churn: ratio(&with_raw),
            churn_creates,
            churn_deletes,
            raw_churn_creates,
            without_churn: without,
            with_churn: with,
            with_raw_churn: with_raw,
        }
    }

    /// Reads at the mixed rate while `--churn-concurrency` loops create and delete agents
    /// `way`; returns the reads and the creates and deletes.
    async fn churn(
        &self,
        way: Way,
        endpoint: &str,
        paths: &[String],
        token: &str,
    ) -> (LoadResult, Batch, Batch) {
        let stop = Arc::new(AtomicBool::new(false));
        let creates: Arc<Timed> = Arc::default();
        let deletes: Arc<Timed> = Arc::default();
        let churn_started = Instant::now();
        let workers: Vec<_> = (0..self.args.churn_concurrency)
            .map(|w| {
                let (api, docker, stop) = (self.api.clone(), self.docker.clone(), stop.clone());
                let (creates, deletes) = (creates.clone(), deletes.clone());
                let (cpu, memory) = (self.args.cpu.clone(), self.args.memory.clone());
                let image = self.image.clone();
                tokio::spawn(async move {
                    let mut k = 0;
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        let t = Instant::now();
                        let (created, deleted) = match way {
                            Way::Flotilla => {
                                let name = format!("fbchurn-{w}-{k}");
                                let created = api.create(&name, &cpu, &memory).await;
                                let mid = Instant::now();
                                let deleted = api.delete(&name).await;
                                ((created, mid), deleted)
                            }
                            Way::Raw => {
                                let name = format!("fbchurnraw-{w}-{k}");
                                let agent =
                                    raw::raw_agent(RAW_INSTANCE, &image, &name, 0, &cpu, &memory);
                                let Ok(agent) = agent else { break };
                                let created = raw::create_and_start(&docker, &agent).await;
                                let mid = Instant::now();
                                let deleted = match &created {
                                    Ok(id) => raw::delete(&docker, id, &agent.volumes).await,
                                    Err(e) => Err(e.clone()),
                                };
                                ((created.map(|_| ()), mid), deleted)
                            }
                        };
                        let ((created, mid), deleted) = (created, deleted);
                        let mut c = creates.lock().unwrap();
                        c.push((stats::micros(mid - t), created));
                        drop(c);
                        deletes
                            .lock()
                            .unwrap()
                            .push((stats::micros(mid.elapsed()), deleted));
                    }
                })
            })
            .collect();
        // Let the churn get going before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reads = self
            .load(
                endpoint,
                paths.to_vec(),
                token,
                Rate::Fixed(self.args.mixed_rate),
                self.args.seconds,
            )
            .await;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.await;
        }
        let wall = churn_started.elapsed().as_secs_f64();
        let summarize = |ops: &Timed| {
            let ops = std::mem::take(&mut *ops.lock().unwrap());
            let operations = ops.len();
            let mut first_error = None;
            let mut ok = Vec::new();
            for (t, r) in ops {
                match r {
                    Ok(()) => ok.push(t),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Batch {
                operations,
                errors: operations - ok.len(),
                concurrency: self.args.churn_concurrency,
                wall_s: wall,
                per_second: ok.len() as f64 / wall,
                latency: stats::Latency::from_micros(ok),
                first_error,
            }
        };
        (reads, summarize(&creates), summarize(&deletes))
    }

    /// Calls and mean duration of every Docker operation the server made, from `/metrics`.
    async fn docker_calls(&self) -> Value {
        let Ok(response) = self
            .api
            .client
            .get(format!("{}/metrics", self.api.base))
            .bearer_auth(server::METRICS_TOKEN)
            .send()
            .await
        else {
            return Value::Null;
        };
        let text = response.text().await.unwrap_or_default();
        let mut ops: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("flotilla_docker_call_duration_seconds_") else {
                continue;
            };
            let (kind, rest) = rest.split_once('{').unwrap_or(("", ""));
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let op = labels
                .split(',')
                .find_map(|l| l.strip_prefix("op=\""))
                .map(|v| v.trim_end_matches('"').to_string());
            let (Some(op), Ok(value)) = (op, value.trim().parse::<f64>()) else {
                continue;
            };
            let entry = ops.entry(op).or_default();
            match kind {
                "sum" => entry.0 = value,
                "count" => entry.1 = value,
                _ => {}
            }
        }
        ops.into_iter()
            .map(|(op, (sum, count))| {
                let mean_ms = if count > 0.0 {
                    sum / count * 1000.0
                } else {
                    0.0
                };
                (op, json!({"calls": count, "mean_ms": mean_ms}))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    fn rss(&self) -> server::Rss {
        self.server.rss().unwrap_or_default()
    }

    async fn run(&self, report: &mut Report) -> anyhow::Result<()> {
        let n = self.args.agents;
        // Idle: logged in, a few requests served, nothing deployed.
        for _ in 0..10 {
            let _ = self
                .api
                .call(reqwest::Method::GET, "/api/agents", None)
                .await;
        }
        self.settle().await;
        let idle = self.rss();
        report.memory.rss_idle_bytes = idle.rss;
        report.memory.anon_idle_bytes = idle.anon;

        for (round, &c) in self.args.concurrency.iter().enumerate() {
            eprintln!("deploy round: {n} agents at concurrency {c}");
            let (raw, raw_same_calls) = if self.args.skip_raw {
                (Lifecycle::default(), Batch::default())
            } else {
                eprintln!("  raw (bollard) ...");
                let raw = self.raw_lifecycle(n, c, "fbraw").await?;
                eprintln!("  raw with flotilla's Docker calls ...");
                (raw, self.raw_create_same_calls(n, c, "fbsame").await?)
            };
            eprintln!("  flotilla (REST API) ...");
            let names = self.names("fb", n);
            let create_start = self.create_all(&names, c).await;
            self.settle().await;
            if round == 0 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let with = self.rss();
                report.memory.rss_with_agents_bytes = with.rss;
                report.memory.anon_with_agents_bytes = with.anon;
                report.memory.file_with_agents_bytes = with.file;
                report.metrics_scrape = self.scrape().await;
                if !self.args.skip_read {
                    eprintln!(
                        "read load: {n} agents, {} connections",
                        self.args.connections
                    );
                    self.read_load(&names, report).await;
                }
                if !self.args.skip_mixed {
                    eprintln!(
                        "mixed: reads at {} req/s, churn x{}",
                        self.args.mixed_rate, self.args.churn_concurrency
                    );
                    report.mixed = self.mixed(&names).await;
                }
                let after = self.rss();
                report.memory.rss_after_read_load_bytes = after.rss;
                report.memory.peak_rss_bytes = after.peak;
                self.settle().await;
            }
            let flotilla = if self.args.skip_lifecycle {
                // The agents stay; the clean-up at the end removes them by label.
                Lifecycle {
                    create_start,
                    ..Lifecycle::default()
                }
            } else {
                let api = &self.api;
                let stop = self
                    .for_all(&names, c, |name| async move { api.stop(&name).await })
                    .await;
                self.settle().await;
                let start = self
                    .for_all(&names, c, |name| async move { api.start(&name).await })
                    .await;
                self.settle().await;
                let delete = self
                    .for_all(&names, c, |name| async move { api.delete(&name).await })
                    .await;
                self.settle().await;
                Lifecycle {
                    create_start,
                    stop,
                    start,
                    delete,
                }
            };
            let ratio = LifecycleRatio::of(&flotilla, &raw);
            let create_start_same_calls = Ratio::of(&flotilla.create_start, &raw_same_calls);
            eprintln!(
                "  create+start {:.1}/s raw, {:.1}/s raw with the same calls, {:.1}/s flotilla: \
                 ratio {:.3} ({:.3} to the same calls)",
                raw.create_start.per_second,
                raw_same_calls.per_second,
                flotilla.create_start.per_second,
                ratio.create_start.throughput,
                create_start_same_calls.throughput
            );
            report.deploy.push(DeployRound {
                concurrency: c,
                raw,
                flotilla,
                ratio,
                raw_same_calls,
                create_start_same_calls,
            });
        }
        report.memory.per_agent_bytes = (report.memory.rss_with_agents_bytes as i64
            - report.memory.rss_idle_bytes as i64)
            / n.max(1) as i64;
        if !self.args.skip_raw {
            report.single = self.single().await?;
        }
        report.docker_calls = self.docker_calls().await;
        Ok(())
    }

    /// Stop and start `--single` agents one at a time, both ways.
    async fn single(&self) -> anyhow::Result<Single> {
        let k = self.args.single.min(self.args.agents).max(1);
        eprintln!("single calls: stop and start {k} agents one at a time");
        let raw_agents = self.raw_agents(k, |i| format!("fbsingle-raw-{i:02}"))?;
        let docker = &self.docker;
        let mut ids = Vec::new();
        for a in &raw_agents {
            ids.push(
                raw::create_and_start(docker, a)
                    .await
                    .map_err(anyhow::Error::msg)?,
            );
        }
        let names = self.names("fbsingle", k);
        let created = self.create_all(&names, 4).await;
        anyhow::ensure!(
            created.errors == 0,
            "single: creates failed: {:?}",
            created.first_error
        );
        self.settle().await;
        // Interleaved, so both ways see the same daemon.
        let raw_stop = stats::batch(
            ids.clone(),
            1,
            |id| async move { raw::stop(docker, &id).await },
        )
        .await;
        let api = &self.api;
        let flotilla_stop = self
            .for_all(&names, 1, |n| async move { api.stop(&n).await })
            .await;
        let raw_start = stats::batch(
            ids.clone(),
            1,
            |id| async move { raw::start(docker, &id).await },
        )
        .await;
        let flotilla_start = self
            .for_all(&names, 1, |n| async move { api.start(&n).await })
            .await;
        let _ = stats::batch(
            ids.clone(),
            1,
            |id| async move { raw::stop(docker, &id).await },
        )
        .await;
        // As flotilla's create did for its agents (untimed).
        for (id, agent) in ids.iter().zip(&raw_agents) {
            raw::write_runtime_files(docker, id, agent, None)
                .await
                .map_err(anyhow::Error::msg)?;
        }
        let pairs: Vec<(String, &raw::RawAgent)> =
            ids.iter().cloned().zip(raw_agents.iter()).collect();
        let raw_start_same_calls = stats::batch(pairs, 1, |(id, agent)| async move {
            raw::start_synced(docker, &id, agent).await
        })
        .await;
        for (id, a) in ids.iter().zip(&raw_agents) {
            let _ = raw::delete(docker, id, &a.volumes).await;
        }
        let _ = self
            .for_all(&names, 4, |n| async move { api.delete(&n).await })
            .await;
        Ok(Single {
            agents: k,
            stop_ratio: Ratio::of(&flotilla_stop, &raw_stop),
            start_ratio: Ratio::of(&flotilla_start, &raw_start),
            start_ratio_same_calls: Ratio::of(&flotilla_start, &raw_start_same_calls),
            raw_start_same_calls,
            raw_stop,
            raw_start,
            flotilla_stop,
            flotilla_start,
        })
    }
}

// ---- targets and the table -------------------------------------------------------------------

fn check(report: &mut Report, name: &str, target: &str, measured: String, met: bool) {
    report.targets.push(TargetCheck {
        name: name.into(),
        target: target.into(),
        measured,
        met,
    });
}

/// The list target for a fleet of `n` agents, (requests per second, p99 in ms), if the issue
/// sets one for that size.
fn target_load(endpoint: &str, n: usize) -> Option<(f64, f64)> {
    match (endpoint, n) {
        ("GET /api/agents", 0..=100) => Some((5_000.0, 25.0)),
        ("GET /api/agents", 1000..) => Some((500.0, 100.0)),
        _ => None,
    }
}

fn evaluate(report: &mut Report, n: usize) {
    for round in report.deploy.clone() {
        // Not measured when the raw side was skipped.
        if matches!(round.concurrency, 8 | 32) && round.raw.create_start.operations > 0 {
            let r = round.ratio.create_start.throughput;
            check(
                report,
                &format!("deploy throughput flotilla/raw at C={}", round.concurrency),
                "≥ 0.95",
                format!(
                    "{r:.3} ({:.3} to the same Docker calls made directly)",
                    round.create_start_same_calls.throughput
                ),
                r >= 0.95,
            );
        }
    }
    let find = |report: &Report, endpoint: &str, mode: &str| {
        report
            .read
            .iter()
            .find(|r| r.endpoint == endpoint && r.mode == mode)
            .cloned()
    };
    if let (Some(list), Some((rate, p99_max))) = (
        find(report, "GET /api/agents", "max"),
        target_load("GET /api/agents", n),
    ) {
        // Throughput at full speed; p99 at the target rate (open loop), when it was run.
        let at_target = report
            .read
            .iter()
            .find(|r| r.endpoint == "GET /api/agents" && r.target_rate == Some(rate))
            .cloned();
        let p99 = at_target.as_ref().map(|r| r.latency.p99_ms);
        let measured = format!(
            "{:.0} req/s; p99 {} at {rate:.0} req/s ({:.1} ms at full speed)",
            list.per_second,
            p99.map_or("not measured".to_string(), |p| format!("{p:.1} ms")),
            list.latency.p99_ms
        );
        check(
            report,
            &format!("GET /api/agents, {n} agents, 64 connections"),
            &format!("≥ {rate:.0} req/s, p99 ≤ {p99_max:.0} ms"),
            measured,
            list.per_second >= rate && p99.is_some_and(|p| p <= p99_max),
        );
    }
    if let Some(one) = find(report, "GET /api/agents/{name}", "max") {
        let rps = one.per_second;
        check(
            report,
            "GET /api/agents/{name}, 64 connections",
            "≥ 20000 req/s",
            format!("{rps:.0} req/s"),
            rps >= 20_000.0,
        );
    }
    let single = report.single.clone();
    let phases = if single.agents > 0 {
        vec![
            ("stop ÷ a Docker stop", single.stop_ratio),
            ("start ÷ a bare Docker start", single.start_ratio),
            (
                "start ÷ the same Docker calls (settings read, files written if changed, start)",
                single.start_ratio_same_calls,
            ),
        ]
    } else {
        Vec::new()
    };
    for (what, ratio) in phases {
        check(
            report,
            &format!("one {what}, p50"),
            "≤ 1.2",
            format!("{:.2}", ratio.p50),
            ratio.p50 > 0.0 && ratio.p50 <= 1.2,
        );
    }
    let scrape = report.metrics_scrape.latency;
    // Unmeasured (an incomplete run) is left out, not reported as a miss.
    if scrape.p99_ms > 0.0 {
        check(
            report,
            &format!("/metrics scrape with {n} agents (p99 of 20, no load)"),
            "< 50 ms",
            format!("{:.1} ms", scrape.p99_ms),
            scrape.p99_ms < 50.0,
        );
    }
    let m = report.mixed.clone();
    if m.without_churn.requests > 0 {
        check(
            report,
            "read p99 during churn ÷ without",
            "≤ 2",
            format!(
                "{:.2} ({:.2} ms vs {:.2} ms; raw Docker churn: {:.2} ms)",
                m.p99_ratio,
                m.with_churn.latency.p99_ms,
                m.without_churn.latency.p99_ms,
                m.with_raw_churn.latency.p99_ms
            ),
            m.p99_ratio > 0.0 && m.p99_ratio <= 2.0,
        );
    }
    let rss = report.memory.rss_with_agents_bytes;
    if n >= 1000 && rss > 0 {
        check(
            report,
            &format!("RSS with {n} agents"),
            "≤ 150 MB",
            format!("{:.1} MB", rss as f64 / 1e6),
            rss <= 150_000_000,
        );
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn batch_row(what: &str, b: &Batch) -> String {
    format!(
        "{what:<14} {:>5} ops {:>4} err {:>8.2} s {:>8.2}/s   p50 {:>8.1}  p95 {:>8.1}  p99 {:>8.1} ms",
        b.operations,
        b.errors,
        b.wall_s,
        b.per_second,
        b.latency.p50_ms,
        b.latency.p95_ms,
        b.latency.p99_ms
    )
}

fn print_table(report: &Report, args: &Args) {
    let m = &report.machine;
    println!();
    println!(
        "flotilla fleet benchmark: N = {} agents (cpu {}, memory {}), FLOTILLA_DOCKER_CONCURRENCY = {}",
        args.agents, args.cpu, args.memory, args.docker_concurrency
    );
    println!(
        "machine: {} CPUs ({}), {}, kernel {}, Docker {} (API {})",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        mb(m["memory_bytes"].as_u64().unwrap_or(0)),
        m["kernel"].as_str().unwrap_or(""),
        m["docker_version"].as_str().unwrap_or(""),
        m["docker_api_version"].as_str().unwrap_or("")
    );
    for round in &report.deploy {
        println!();
        println!("deploy at C = {}", round.concurrency);
        for (way, l) in [("raw", &round.raw), ("flotilla", &round.flotilla)] {
            println!("  {way}");
            for (what, b) in [
                ("create+start", &l.create_start),
                ("stop", &l.stop),
                ("start", &l.start),
                ("delete", &l.delete),
            ] {
                println!("    {}", batch_row(what, b));
            }
        }
        println!("  raw with flotilla's Docker calls");
        println!("    {}", batch_row("create+start", &round.raw_same_calls));
        let r = &round.ratio;
        println!("  flotilla ÷ raw (throughput, p50, p99)");
        for (what, x) in [
            ("create+start", r.create_start),
            ("stop", r.stop),
            ("start", r.start),
            ("delete", r.delete),
        ] {
            println!(
                "    {what:<14} {:>6.3} {:>6.3} {:>6.3}",
                x.throughput, x.p50, x.p99
            );
        }
        let x = round.create_start_same_calls;
        println!(
            "    {:<14} {:>6.3} {:>6.3} {:>6.3}   (÷ raw with the same calls)",
            "create+start", x.throughput, x.p50, x.p99
        );
    }
    let s = &report.single;
    println!();
    println!("one call at a time ({} agents)", s.agents);
    for (what, b) in [
        ("raw stop", &s.raw_stop),
        ("flotilla stop", &s.flotilla_stop),
        ("raw start", &s.raw_start),
        ("raw start+sync", &s.raw_start_same_calls),
        ("flotilla start", &s.flotilla_start),
    ] {
        println!("    {}", batch_row(what, b));
    }
    println!(
        "    p50 ratio: stop {:.2}, start {:.2} (vs a bare start), {:.2} (vs the same calls)",
        s.stop_ratio.p50, s.start_ratio.p50, s.start_ratio_same_calls.p50
    );
    println!();
    println!(
        "read load, {} connections, {} s per run",
        args.connections, args.seconds
    );
    println!(
        "    {:<30} {:>5} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9}  CPU cores: server/load gen/others",
        "endpoint", "mode", "target/s", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "body B",
    );
    let mut rows: Vec<&LoadResult> = report.read.iter().collect();
    let mixed = report.mixed.without_churn.requests > 0;
    if mixed {
        rows.push(&report.mixed.without_churn);
        rows.push(&report.mixed.with_churn);
        rows.push(&report.mixed.with_raw_churn);
    }
    for (i, r) in rows.iter().enumerate() {
        let label = match i.checked_sub(report.read.len()) {
            None => r.endpoint.clone(),
            Some(0) => "  mixed: no churn".to_string(),
            Some(1) => "  mixed: flotilla churn".to_string(),
            Some(_) => "  mixed: raw Docker churn".to_string(),
        };
        println!(
            "    {:<30} {:>5} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>9}  {:.2}/{:.2}/{:.2}",
            label,
            r.mode,
            r.target_rate
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.per_second,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.errors,
            r.mean_body_bytes,
            r.server_cpu_cores,
            r.client_cpu_cores,
            r.others_cpu_cores
        );
    }
    let mx = &report.mixed;
    if mixed {
        println!(
            "    churn x{} loops: flotilla {} creates ({:.2}/s) + {} deletes, read p99 ÷ no churn {:.2}; \
             raw Docker {} creates ({:.2}/s), read p99 ÷ no churn {:.2}",
            mx.churn_concurrency,
            mx.churn_creates.operations,
            mx.churn_creates.per_second,
            mx.churn_deletes.operations,
            mx.p99_ratio,
            mx.raw_churn_creates.operations,
            mx.raw_churn_creates.per_second,
            mx.p99_ratio_raw_churn
        );
    }
    let sc = &report.metrics_scrape;
    println!(
        "    /metrics, one scrape at a time: p50 {:.2} ms, p99 {:.2} ms, {} bytes",
        sc.latency.p50_ms, sc.latency.p99_ms, sc.body_bytes
    );
    let mem = &report.memory;
    println!();
    println!(
        "memory (server RSS): idle {}, with {} agents {}, after read load {}, peak {}; {} bytes per agent",
        mb(mem.rss_idle_bytes),
        args.agents,
        mb(mem.rss_with_agents_bytes),
        mb(mem.rss_after_read_load_bytes),
        mb(mem.peak_rss_bytes),
        mem.per_agent_bytes
    );
    println!(
        "    of which private (RssAnon): idle {}, with {} agents {}; mapped executable (RssFile) {}",
        mb(mem.anon_idle_bytes),
        args.agents,
        mb(mem.anon_with_agents_bytes),
        mb(mem.file_with_agents_bytes)
    );
    if let Some(ops) = report.docker_calls.as_object() {
        println!();
        println!("the server's Docker calls over the run (calls, mean ms)");
        for (op, v) in ops {
            println!(
                "    {op:<40} {:>8} {:>9.1}",
                v["calls"].as_f64().unwrap_or(0.0),
                v["mean_ms"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!();
    println!("targets");
    for t in &report.targets {
        println!(
            "    [{}] {:<58} {:<28} {}",
            if t.met { "met " } else { "MISS" },
            t.name,
            t.target,
            t.measured
        );
    }
    println!();
    println!("cleanup: {}", report.cleanup);
}

// ---- main --------------------------------------------------------------------------------------

async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Remove everything both instances made, by label; returns what was removed and what is left. Tried up to three times, 5 s apart (a
/// daemon being restarted answers again within seconds); what could not be listed or removed
/// is reported, in the JSON and on stderr, never counted as clean.
async fn cleanup(docker: &Docker) -> Value {
    let mut out = serde_json::Map::new();
    for instance in [INSTANCE, RAW_INSTANCE] {
        let mut attempt = 1;
        let (removed, left) = loop {
            let removed = raw::remove_instance(docker, instance).await;
            let left = raw::instance_objects(docker, instance).await;
            let clean = matches!(&left, Ok((c, v)) if c.is_empty() && v.is_empty());
            if clean || attempt == 3 {
                break (removed, left);
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let error = match (&removed, &left) {
            (_, Err(e)) | (Err(e), _) => Some(e.clone()),
            _ => None,
        };
        let (left_containers, left_volumes) = left
            .as_ref()
            .map_or((None, None), |(c, v)| (Some(c.len()), Some(v.len())));
        if error.is_some() || left_containers != Some(0) || left_volumes != Some(0) {
            eprintln!(
                "warning: objects of {instance} may be left (error: {error:?}); remove them with\n  \
                 docker rm -f $(docker ps -aq --filter label={label}={instance}); \
                 docker volume rm $(docker volume ls -q --filter label={label}={instance})",
                label = flotilla_actors::runtime::labels::INSTANCE
            );
        }
        out.insert(
            instance.to_string(),
            json!({
                "removed_containers": removed.as_ref().ok().map(|r| r.0),
                "removed_volumes": removed.as_ref().ok().map(|r| r.1),
                "left_containers": left_containers,
                "left_volumes": left_volumes,
                "attempts": attempt,
                "error": error,
            }),
        );
    }
    Value::Object(out)
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await
        .context("connecting to the Docker daemon")?;
    let version = docker.version().await?;
    let out_dir = args
        .out
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(bench_dir);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| out_dir.join("fleet.json"));
    std::fs::create_dir_all(&out_dir)?;
    server::kill_stale(&out_dir.join("fleet-server.pid"));
    let leftovers = cleanup(&docker).await;
    eprintln!("start-up clean-up: {leftovers}");

    let settings = ServerSettings {
        instance: INSTANCE.into(),
        docker_concurrency: args.docker_concurrency,
        ssh_ports: SSH_PORTS,
        work_dir: out_dir.clone(),
        env: args
            .server_env
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--server-env wants NAME=value, not {kv}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_flotilla"));
    let server = tokio::select! {
        s = Server::start(&binary, &settings) => s?,
        signal = interrupted() => {
            let cleaned = cleanup(&docker).await;
            anyhow::bail!("interrupted ({signal}) while starting the server; clean-up: {cleaned}");
        }
    };
    eprintln!(
        "server pid {} on {} (log: {})",
        server.pid,
        server.addr,
        server.log.display()
    );
    let client = Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(600))
        .build()?;
    let token = server.admin_token(&client).await?;
    let api = Api {
        client,
        base: server.base.clone(),
        token,
    };
    let mut report = Report {
        machine: machine(&version),
        settings: json!({
            "agents": args.agents,
            "concurrency": args.concurrency,
            "docker_concurrency": args.docker_concurrency,
            "connections": args.connections,
            "seconds": args.seconds,
            "fixed_rate": args.rate.map_or_else(|| json!("half of each endpoint's max"), |r| json!(r)),
            "mixed_rate": args.mixed_rate,
            "churn_concurrency": args.churn_concurrency,
            "single": args.single,
            "agent_cpu": args.cpu,
            "agent_memory": args.memory,
            "server_env": args.server_env,
            "skipped": {
                "raw": args.skip_raw,
                "lifecycle": args.skip_lifecycle,
                "read": args.skip_read,
                "mixed": args.skip_mixed,
            },
            "server": {
                "binary": binary,
                "instance": INSTANCE,
                "raw_instance": RAW_INSTANCE,
                "workers": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "store": "surrealkv on disk (temporary data dir)",
                "api_rate_per_second": 1_000_000_000u64,
                "api_burst": 1_000_000_000u64,
            },
        }),
        ..Report::default()
    };
    let bench = Bench {
        image: flotilla_actors::runtime::image::DEFAULT_IMAGE.to_string(),
        args: args.clone(),
        api,
        docker,
        server,
    };
    let outcome = tokio::select! {
        r = bench.run(&mut report) => r,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted ({signal})")),
    };
    let Bench { server, docker, .. } = bench;
    eprintln!("stopping the server and cleaning up ...");
    server.stop(Duration::from_secs(30)).await;
    report.cleanup = cleanup(&docker).await;
    // What was measured before an interruption or a failure is written all the same, marked.
    report.incomplete = outcome.as_ref().err().map(|e| format!("{e:#}"));
    report.total_seconds = started.elapsed().as_secs_f64();
    evaluate(&mut report, args.agents);
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    print_table(&report, &args);
    match &report.incomplete {
        None => println!("written to {}", out.display()),
        Some(why) => println!(
            "incomplete ({why}); what was measured is in {}",
            out.display()
        ),
    }
    outcome
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}
