//! Prometheus metrics: one [`Metrics`] registry per [`Fleet`], exported in the text exposition
//! format by the server's `/metrics`.
//!
//! ## Per agent, built at scrape time
//! Labels `agent` (the name) and `id` (immutable, so series can be joined across a rename).
//! The [`AgentCollector`] builds these families from the [`Directory`] and the [`StatsBoard`] each
//! time it is scraped, so a deleted agent's series disappear with its snapshot (there is nothing
//! to remove), and a scrape never calls Docker nor waits for an actor:
//!
//! | metric | type | from |
//! |---|---|---|
//! | `flotilla_agent_status{agent,id,status}` | gauge (always 1) | snapshot |
//! | `flotilla_agent_restarts_total` | counter | snapshots: container starts after the first one this server saw (restart policy, a start after a stop, a recreate) |
//! | `flotilla_agent_cpu_seconds_total` | counter | latest stats sample (Docker's cumulative CPU counter of the current container) |
//! | `flotilla_agent_memory_working_set_bytes` | gauge | latest sample, page cache excluded |
//! | `flotilla_agent_memory_limit_bytes` | gauge | latest sample |
//! | `flotilla_agent_network_receive_bytes_total`, `..._transmit_bytes_total` | counter | latest sample |
//! | `flotilla_agent_last_seen_timestamp_seconds` | gauge | when the latest sample was taken |
//!
//! Sample-based series exist only for running agents that have a sample of their current
//! container. There are no per-agent histograms: a histogram is ~15 series.
//!
//! ## Fleet-wide
//! | metric | type | counted where |
//! |---|---|---|
//! | `flotilla_agents{status}` | gauge | snapshots, at scrape time |
//! | `flotilla_operations_total{kind,outcome}` | counter | `Fleet::ask`, the one place commands reach agent actors; `kind` is the message (`start_agent`, `provision`, ...), `outcome` `ok` or the error's API code |
//! | `flotilla_actor_requests_in_flight` | gauge | `Fleet::ask`: commands sent and not yet answered (the agents' mailbox depth, summed) |
//! | `flotilla_docker_call_duration_seconds{op}` | histogram | every bounded Docker call ([`crate::runtime::docker`]) |
//! | `flotilla_docker_mutations_waiting`, `flotilla_docker_mutations_in_flight` | gauge | the Docker runtime's limit on concurrent mutating calls |
//! | `flotilla_http_request_duration_seconds{method,route,status}` | histogram | the server's middleware; `route` is the matched pattern (`/api/agents/{name}`), `status` the class (`2xx`) |
//! | `flotilla_websocket_sessions` | gauge | the WebSocket sessions ([`Metrics::websocket_session`]) |
//! | `flotilla_rate_limited_requests_total{scope}` | counter | the per-user API limiter (`api`) and the per-IP login limiter (`login`) |
//! | `flotilla_stats_cycles_total`, `..._skipped_cycles_total`, `..._failed_readings_total`, `flotilla_stats_last_cycle_seconds` | counter, gauge | the stats sampler |
//!
//! ## Docker-call metrics are process-wide
//! The Docker client is built before the fleet (and its deadline helper is a free function the
//! image builder shares), so the Docker histogram and mutation gauges are process statics that
//! every fleet's registry exports. A server process has one Docker client, so this is exact in
//! production; test processes that run several servers see the sum of theirs.
//!
//! [`Fleet`]: crate::fleet::Fleet

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::directory::Directory;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::Status;
use crate::stats::StatsBoard;

/// Buckets of the Docker call histogram, in seconds: an inspect takes milliseconds, a create a
/// third of a second, a stop up to its grace period.
const DOCKER_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Buckets of the HTTP request histogram, in seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const STATUSES: [Status; 4] = [
    Status::Running,
    Status::Stopped,
    Status::Paused,
    Status::Restarting,
];

/// Process-wide Docker call metrics (see the module doc). `None` only if the metric definitions
/// were invalid, which the unit tests rule out.
struct DockerMetrics {
    calls: HistogramVec,
    waiting: IntGauge,
    in_flight: IntGauge,
}

static DOCKER: LazyLock<Option<DockerMetrics>> = LazyLock::new(|| {
    Some(DockerMetrics {
        calls: HistogramVec::new(
            HistogramOpts::new(
                "flotilla_docker_call_duration_seconds",
                "Duration of calls to the Docker daemon, by operation",
            )
            .buckets(DOCKER_BUCKETS.to_vec()),
            &["op"],
        )
        .ok()?,
        waiting: IntGauge::new(
            "flotilla_docker_mutations_waiting",
            "Mutating Docker calls waiting for a slot under FLOTILLA_DOCKER_CONCURRENCY",
        )
        .ok()?,
        in_flight: IntGauge::new(
            "flotilla_docker_mutations_in_flight",
            "Mutating Docker calls running (at most FLOTILLA_DOCKER_CONCURRENCY)",
        )
        .ok()?,
    })
});

/// Record one Docker call. `what` is the call's description (`"creating a container"`); the `op`
/// label is its slug (`creating_container`). Descriptions are string literals at the call
/// sites, so the label's values are a small fixed set.
pub(crate) fn observe_docker_call(what: &str, elapsed: Duration) {
    if let Some(docker) = DOCKER.as_ref() {
        docker
            .calls
            .with_label_values(&[op_label(what)])
            .observe(elapsed.as_secs_f64());
    }
}

/// Counts a mutating Docker call from when it asks for a slot until it is dropped.
pub(crate) struct MutationGauge {
    running: bool,
}

impl MutationGauge {
    /// The call starts waiting for a slot.
    pub(crate) fn waiting() -> Self {
        if let Some(docker) = DOCKER.as_ref() {
            docker.waiting.inc();
        }
        Self { running: false }
    }

    /// The call got its slot and runs.
    pub(crate) fn running(&mut self) {
        if !self.running
            && let Some(docker) = DOCKER.as_ref()
        {
            docker.waiting.dec();
            docker.in_flight.inc();
        }
        self.running = true;
    }
}

impl Drop for MutationGauge {
    fn drop(&mut self) {
        if let Some(docker) = DOCKER.as_ref() {
            if self.running {
                docker.in_flight.dec();
            } else {
                docker.waiting.dec();
            }
        }
    }
}

/// `"reading a path's status"` → `reading_path_status`: lower case, articles dropped, words
/// joined by `_`.
pub fn op_label(what: &str) -> String {
    what.split(|c: char| !c.is_ascii_alphanumeric() && c != '\'')
        .map(|w| w.trim_end_matches("'s").trim_matches('\''))
        .filter(|w| !w.is_empty() && !matches!(*w, "a" | "an" | "the"))
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("_")
}

/// `flotilla_actors::agent::messages::StartAgent` → `start_agent`: the `kind` label of an
/// operation, from the type of the message sent.
pub fn operation_kind<M>() -> String {
    let full = std::any::type_name::<M>();
    let path = full.split('<').next().unwrap_or(full);
    let name = path.rsplit("::").next().unwrap_or(path);
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The `outcome` label of a finished operation: `ok`, or the machine code the API gives the
/// error (the same codes as the server's `ApiError`).
pub fn outcome<T>(result: &Result<T, FleetError>) -> &'static str {
    let Err(error) = result else {
        return "ok";
    };
    match error {
        FleetError::NotFound { .. } => "not_found",
        FleetError::Forbidden(_) => "forbidden",
        FleetError::Invalid { .. } => "invalid_input",
        FleetError::TooLarge(_) => "payload_too_large",
        FleetError::Conflict(_) => "conflict",
        FleetError::IllegalState(_) => "illegal_state",
        FleetError::BadCredentials => "bad_credentials",
        FleetError::PortsExhausted => "ports_exhausted",
        FleetError::NotReady { .. } => "not_ready",
        FleetError::RuntimeUnavailable(_) => "docker_unavailable",
        FleetError::RuntimeTimeout(_) => "docker_timeout",
        FleetError::Runtime(_) => "docker_error",
        FleetError::ActorTimeout(_) => "busy",
        FleetError::ActorGone => "restarting",
        FleetError::Store(_) => "store_error",
        FleetError::Internal(_) => "internal",
    }
}

/// What a rate limiter refused, for `flotilla_rate_limited_requests_total{scope}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// An authenticated API request over its user's rate.
    Api,
    /// A login attempt from an IP that failed too often.
    Login,
}

impl Limited {
    pub fn as_str(self) -> &'static str {
        match self {
            Limited::Api => "api",
            Limited::Login => "login",
        }
    }
}

/// The fleet's metrics registry and the handles that count into it. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

struct MetricsInner {
    registry: Registry,
    operations: IntCounterVec,
    in_flight: IntGauge,
    http_requests: HistogramVec,
    rate_limited: IntCounterVec,
    websocket_sessions: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn metric_error(e: prometheus::Error) -> FleetError {
    FleetError::Internal(format!("defining metrics: {e}"))
}

impl Metrics {
    /// A registry with every fleet metric, reading per-agent values from `directory` and
    /// `board` at scrape time.
    pub(crate) fn new(directory: Directory, board: StatsBoard) -> Result<Self, FleetError> {
        let registry = Registry::new();
        let operations = IntCounterVec::new(
            Opts::new(
                "flotilla_operations_total",
                "Commands sent to agent actors, by kind and outcome (ok or the error code)",
            ),
            &["kind", "outcome"],
        )
        .map_err(metric_error)?;
        let in_flight = IntGauge::new(
            "flotilla_actor_requests_in_flight",
            "Commands sent to agent actors and not yet answered (mailbox depth, summed)",
        )
        .map_err(metric_error)?;
        let http_requests = HistogramVec::new(
            HistogramOpts::new(
                "flotilla_http_request_duration_seconds",
                "HTTP request durations, by method, route pattern and status class",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route", "status"],
        )
        .map_err(metric_error)?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "flotilla_rate_limited_requests_total",
                "Requests refused with 429, by limiter (api: per user, login: per IP)",
            ),
            &["scope"],
        )
        .map_err(metric_error)?;
        // Both scopes exist from the start, so `rate()` over them works before the first 429.
        for scope in [Limited::Api, Limited::Login] {
            rate_limited.with_label_values(&[scope.as_str()]);
        }
        let websocket_sessions =
            IntGauge::new("flotilla_websocket_sessions", "Open WebSocket sessions")
                .map_err(metric_error)?;
        for collector in [
            Box::new(operations.clone()) as Box<dyn Collector>,
            Box::new(in_flight.clone()),
            Box::new(http_requests.clone()),
            Box::new(rate_limited.clone()),
            Box::new(websocket_sessions.clone()),
            Box::new(AgentCollector::new(directory, board)?),
        ] {
            registry.register(collector).map_err(metric_error)?;
        }
        if let Some(docker) = DOCKER.as_ref() {
            for collector in [
                Box::new(docker.calls.clone()) as Box<dyn Collector>,
                Box::new(docker.waiting.clone()),
                Box::new(docker.in_flight.clone()),
            ] {
                registry.register(collector).map_err(metric_error)?;
            }
        }
        Ok(Self {
            inner: Arc::new(MetricsInner {
                registry,
                operations,
                in_flight,
                http_requests,
                rate_limited,
                websocket_sessions,
            }),
        })
    }

    /// The registry, for callers that add collectors of their own.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Everything, in the text exposition format (`text/plain; version=0.0.4`).
    pub fn encode(&self) -> Result<String, FleetError> {
        TextEncoder::new()
            .encode_to_string(&self.inner.registry.gather())
            .map_err(|e| FleetError::Internal(format!("encoding metrics: {e}")))
    }

    /// Record one HTTP request. `route` must be a route *pattern* (or a fixed word such as
    /// `unmatched`), never a concrete path, so agent names do not become label values.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "OTHER",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.inner
            .http_requests
            .with_label_values(&[method, route, class])
            .observe(elapsed.as_secs_f64());
    }

    /// Count a request a rate limiter refused.
    pub fn count_rate_limited(&self, scope: Limited) {
        self.inner
            .rate_limited
            .with_label_values(&[scope.as_str()])
            .inc();
    }

    /// Count an open WebSocket session for as long as the returned guard lives: create it when
    /// the session is established, keep it in the session (actor) state, and it decrements the
    /// gauge when dropped, however the session ends.
    pub fn websocket_session(&self) -> WebSocketSession {
        self.inner.websocket_sessions.inc();
        WebSocketSession {
            gauge: self.inner.websocket_sessions.clone(),
        }
    }

    /// The raw gauge behind [`Metrics::websocket_session`], for code that counts by hand.
    pub fn websocket_sessions(&self) -> &IntGauge {
        &self.inner.websocket_sessions
    }

    /// Count a command to an agent actor as in flight until the guard is dropped.
    pub(crate) fn command_in_flight(&self) -> InFlight {
        self.inner.in_flight.inc();
        InFlight {
            gauge: self.inner.in_flight.clone(),
        }
    }

    /// Count a finished command.
    pub(crate) fn count_operation(&self, kind: &str, outcome: &str) {
        self.inner
            .operations
            .with_label_values(&[kind, outcome])
            .inc();
    }
}

/// An open WebSocket session, counted in `flotilla_websocket_sessions` until dropped.
#[derive(Debug)]
pub struct WebSocketSession {
    gauge: IntGauge,
}

impl Drop for WebSocketSession {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A command in flight, counted in `flotilla_actor_requests_in_flight` until dropped (also when
/// the caller goes away mid-command).
pub(crate) struct InFlight {
    gauge: IntGauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Fleet {
    /// The fleet's metrics (see [`crate::metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

// ---- per-agent families, built at scrape time ---------------------------------------------

/// Name, help text, type and label names of a family the [`AgentCollector`] builds.
struct FamilySpec {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
}

const AGENT_LABELS: &[&str] = &["agent", "id"];

const AGENT_STATUS: FamilySpec = FamilySpec {
    name: "flotilla_agent_status",
    help: "The agent's status (the series with its current status is 1)",
    kind: MetricType::GAUGE,
    labels: &["agent", "id", "status"],
};
const AGENT_RESTARTS: FamilySpec = FamilySpec {
    name: "flotilla_agent_restarts_total",
    help: "Container starts after the first one this server saw (restart policy, start after stop, recreate)",
    kind: MetricType::COUNTER,
    labels: AGENT_LABELS,
};
const AGENT_CPU: FamilySpec = FamilySpec {
    name: "flotilla_agent_cpu_seconds_total",
    help: "CPU time used by the agent's current container",
    kind: MetricType::COUNTER,
    labels: AGENT_LABELS,
};
const AGENT_MEMORY: FamilySpec = FamilySpec {
    name: "flotilla_agent_memory_working_set_bytes",
    help: "Memory in use by the agent's container, page cache excluded",
    kind: MetricType::GAUGE,
    labels: AGENT_LABELS,
};
const AGENT_MEMORY_LIMIT: FamilySpec = FamilySpec {
    name: "flotilla_agent_memory_limit_bytes",
    help: "The agent container's memory limit",
    kind: MetricType::GAUGE,
    labels: AGENT_LABELS,
};
const AGENT_RX: FamilySpec = FamilySpec {
    name: "flotilla_agent_network_receive_bytes_total",
    help: "Bytes received by the agent's current container",
    kind: MetricType::COUNTER,
    labels: AGENT_LABELS,
};
const AGENT_TX: FamilySpec = FamilySpec {
    name: "flotilla_agent_network_transmit_bytes_total",
    help: "Bytes sent by the agent's current container",
    kind: MetricType::COUNTER,
    labels: AGENT_LABELS,
};
const AGENT_LAST_SEEN: FamilySpec = FamilySpec {
    name: "flotilla_agent_last_seen_timestamp_seconds",
    help: "When the agent's latest stats sample was taken (Unix time)",
    kind: MetricType::GAUGE,
    labels: AGENT_LABELS,
};
const AGENTS: FamilySpec = FamilySpec {
    name: "flotilla_agents",
    help: "Agents by status",
    kind: MetricType::GAUGE,
    labels: &["status"],
};
const STATS_CYCLES: FamilySpec = FamilySpec {
    name: "flotilla_stats_cycles_total",
    help: "Stats sampling cycles completed",
    kind: MetricType::COUNTER,
    labels: &[],
};
const STATS_SKIPPED: FamilySpec = FamilySpec {
    name: "flotilla_stats_skipped_cycles_total",
    help: "Stats sampling ticks skipped because the previous cycle was still running",
    kind: MetricType::COUNTER,
    labels: &[],
};
const STATS_FAILED: FamilySpec = FamilySpec {
    name: "flotilla_stats_failed_readings_total",
    help: "Stats readings that failed or timed out",
    kind: MetricType::COUNTER,
    labels: &[],
};
const STATS_LAST_CYCLE: FamilySpec = FamilySpec {
    name: "flotilla_stats_last_cycle_seconds",
    help: "Duration of the last completed stats sampling cycle",
    kind: MetricType::GAUGE,
    labels: &[],
};

/// Every family the collector builds, in the order it builds them.
const FAMILIES: [&FamilySpec; 13] = [
    &AGENT_STATUS,
    &AGENT_RESTARTS,
    &AGENT_CPU,
    &AGENT_MEMORY,
    &AGENT_MEMORY_LIMIT,
    &AGENT_RX,
    &AGENT_TX,
    &AGENT_LAST_SEEN,
    &AGENTS,
    &STATS_CYCLES,
    &STATS_SKIPPED,
    &STATS_FAILED,
    &STATS_LAST_CYCLE,
];

/// Builds the per-agent families (and the sampler's counters) from the directory and the stats
/// board at each scrape, as plain metric families that the registry sorts and the prometheus
/// encoder writes: no stored per-agent state, so nothing goes stale, and no metric vectors to
/// reset and refill under a lock (one pass over the snapshots).
pub struct AgentCollector {
    directory: Directory,
    board: StatsBoard,
    descs: Vec<Desc>,
}

impl AgentCollector {
    fn new(directory: Directory, board: StatsBoard) -> Result<Self, FleetError> {
        let descs = FAMILIES
            .iter()
            .map(|f| {
                Desc::new(
                    f.name.to_string(),
                    f.help.to_string(),
                    f.labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
            })
            .collect::<Result<_, _>>()
            .map_err(metric_error)?;
        Ok(Self {
            directory,
            board,
            descs,
        })
    }
}

impl Collector for AgentCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // In the order the registry sorts each family's series in (by label values, and the
        // name, the first label, is unique), so its sort finds them sorted and is one pass.
        let mut views = self.directory.all();
        views.sort_unstable_by(|a, b| a.record.name.cmp(&b.record.name));
        let mut families: [Vec<Metric>; 8] = Default::default();
        let [status, restarts, cpu, memory, limit, rx, tx, last_seen] = &mut families;
        for family in [&mut *status, &mut *restarts] {
            family.reserve(views.len());
        }
        let mut by_status = [0u64; STATUSES.len()];
        for view in views.iter() {
            let record = &view.record;
            if let Some(i) = STATUSES.iter().position(|s| *s == view.status) {
                by_status[i] += 1;
            }
            let labels = vec![
                label_pair("agent", &record.name),
                label_pair("id", &record.id.to_string()),
            ];
            let mut with_status = labels.clone();
            with_status.push(label_pair("status", view.status.as_str()));
            status.push(metric(with_status, MetricType::GAUGE, 1.0));
            restarts.push(metric(
                labels.clone(),
                MetricType::COUNTER,
                self.directory.restarts(record.id) as f64,
            ));
            if view.status != Status::Running {
                continue;
            }
            let Some(sample) = self
                .board
                .get(record.id)
                .filter(|s| view.container_id.as_deref() == Some(s.container_id.as_str()))
            else {
                continue;
            };
            let r = &sample.reading;
            for (family, spec, value) in [
                (&mut *cpu, &AGENT_CPU, r.cpu_total_ns as f64 / 1e9),
                (&mut *memory, &AGENT_MEMORY, r.memory_used_bytes as f64),
                (
                    &mut *limit,
                    &AGENT_MEMORY_LIMIT,
                    r.memory_limit_bytes as f64,
                ),
                (&mut *rx, &AGENT_RX, r.network_rx_bytes as f64),
                (&mut *tx, &AGENT_TX, r.network_tx_bytes as f64),
                (
                    &mut *last_seen,
                    &AGENT_LAST_SEEN,
                    r.read_at.timestamp_millis() as f64 / 1000.0,
                ),
            ] {
                family.push(metric(labels.clone(), spec.kind, value));
            }
        }
        let agents = STATUSES
            .iter()
            .zip(by_status)
            .map(|(s, n)| {
                metric(
                    vec![label_pair("status", s.as_str())],
                    MetricType::GAUGE,
                    n as f64,
                )
            })
            .collect();
        let sampler = [
            (&STATS_CYCLES, self.board.cycles() as f64),
            (&STATS_SKIPPED, self.board.skipped_cycles() as f64),
            (&STATS_FAILED, self.board.failed_readings() as f64),
            (&STATS_LAST_CYCLE, self.board.last_cycle().as_secs_f64()),
        ]
        .map(|(spec, v)| (spec, vec![metric(Vec::new(), spec.kind, v)]));
        FAMILIES
            .iter()
            .zip(families)
            .map(|(spec, metrics)| (*spec, metrics))
            .chain([(&AGENTS, agents)])
            .chain(sampler)
            // The encoder refuses a family without series; Prometheus' own leave them out.
            .filter(|(_, metrics)| !metrics.is_empty())
            .map(|(spec, metrics)| {
                let mut family = MetricFamily::default();
                family.set_name(spec.name.to_string());
                family.set_help(spec.help.to_string());
                family.set_field_type(spec.kind);
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

fn label_pair(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_string());
    pair.set_value(value.to_string());
    pair
}

/// One series: a gauge or a counter with `value`.
fn metric(labels: Vec<LabelPair>, kind: MetricType, value: f64) -> Metric {
    let mut metric = Metric::from_label(labels);
    if kind == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentId, AgentRecord, AgentRuntime, AgentView, Phase, Resources};
    use chrono::Utc;

    fn view(name: &str, status: Status) -> AgentView {
        AgentView {
            record: AgentRecord {
                id: AgentId::new(),
                name: name.into(),
                owner: "admin".into(),
                agent_type: "t".into(),
                runtime: AgentRuntime::ClaudeCode,
                runtime_model: None,
                template: None,
                resources: Resources::default(),
                custom_instructions: None,
                github_repo: None,
                tags: vec![],
                system: false,
                ssh_port: 2222,
                autonomy_enabled: false,
                read_only_enabled: false,
                read_only_patterns: Default::default(),
                execution_timeout_seconds: 900,
                expose_enabled: false,
                consume_enabled: false,
                avatar_version: 0,
                created: Utc::now(),
                phase: Phase::Ready,
            },
            status,
            container_id: Some(format!("c-{name}")),
            container_missing: false,
            started_at: Some(Utc::now()),
            spec_digest: None,
            mounted_producers: vec![],
        }
    }

    #[test]
    fn labels_are_slugs_and_snake_case() {
        assert_eq!(op_label("creating a container"), "creating_container");
        assert_eq!(op_label("reading a path's status"), "reading_path_status");
        assert_eq!(
            op_label("negotiating the API version"),
            "negotiating_api_version"
        );
        assert_eq!(
            operation_kind::<crate::agent::messages::StartAgent>(),
            "start_agent"
        );
        assert_eq!(operation_kind::<Option<u8>>(), "option");
        assert_eq!(outcome::<()>(&Ok(())), "ok");
        assert_eq!(
            outcome::<()>(&Err(FleetError::agent_not_found("x"))),
            "not_found"
        );
    }

    #[test]
    fn per_agent_series_follow_the_directory() {
        let directory = Directory::new();
        let metrics = Metrics::new(directory.clone(), StatsBoard::default()).unwrap();
        let running = view("alpha", Status::Running);
        let stopped = view("beta", Status::Stopped);
        let alpha_id = running.record.id;
        directory.publish(running);
        directory.publish(stopped);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(&format!(
                "flotilla_agent_status{{agent=\"alpha\",id=\"{alpha_id}\",status=\"running\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains("flotilla_agents{status=\"stopped\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flotilla_agents{status=\"paused\"} 0"),
            "{text}"
        );
        directory.remove(alpha_id);
        let text = metrics.encode().unwrap();
        assert!(!text.contains("agent=\"alpha\""), "{text}");
        assert!(text.contains("agent=\"beta\""), "{text}");
    }

    #[test]
    fn restarts_count_new_start_times_after_the_first() {
        let directory = Directory::new();
        let metrics = Metrics::new(directory.clone(), StatsBoard::default()).unwrap();
        let mut v = view("gamma", Status::Running);
        let id = v.record.id;
        let t0 = Utc::now() - chrono::Duration::seconds(60);
        let starts = [
            Some(t0),
            Some(t0),
            None,
            Some(t0 + chrono::Duration::seconds(5)),
        ];
        for started in starts {
            v.started_at = started;
            directory.publish(v.clone());
        }
        assert_eq!(directory.restarts(id), 1);
        v.started_at = Some(t0 + chrono::Duration::seconds(9));
        directory.publish(v.clone());
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(&format!(
                "flotilla_agent_restarts_total{{agent=\"gamma\",id=\"{id}\"}} 2"
            )),
            "{text}"
        );
        directory.remove(id);
        assert_eq!(directory.restarts(id), 0);
    }

    #[test]
    fn guards_count_in_and_out() {
        let metrics = Metrics::new(Directory::new(), StatsBoard::default()).unwrap();
        let session = metrics.websocket_session();
        assert_eq!(metrics.websocket_sessions().get(), 1);
        drop(session);
        assert_eq!(metrics.websocket_sessions().get(), 0);
        let command = metrics.command_in_flight();
        assert!(
            metrics
                .encode()
                .unwrap()
                .contains("flotilla_actor_requests_in_flight 1")
        );
        drop(command);
        metrics.count_operation("start_agent", "ok");
        metrics.count_rate_limited(Limited::Login);
        metrics.observe_http("BREW", "/api/agents/{name}", 418, Duration::from_millis(3));
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("flotilla_actor_requests_in_flight 0"),
            "{text}"
        );
        assert!(
            text.contains("flotilla_operations_total{kind=\"start_agent\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flotilla_rate_limited_requests_total{scope=\"login\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("method=\"OTHER\",route=\"/api/agents/{name}\",status=\"4xx\""),
            "{text}"
        );
        assert!(DOCKER.is_some());
    }
}
