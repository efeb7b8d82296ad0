//! Stats sampling: one background sampler owns every call flotilla makes to Docker's stats API.
//!
//! Every `stats_interval` it takes one one-shot reading of each *running* agent's container
//! (the list comes from the [`Directory`] snapshot, never from the agents' mailboxes) and keeps
//! the latest [`Sample`] per agent on the [`StatsBoard`], a `DashMap` that
//! `GET /api/agents/{name}/stats` ([`Fleet::stats`]) and the Prometheus exporter read without
//! waiting and without calling Docker.
//!
//! ## Why sampled
//! A stats call is slow on the daemon side: on Docker 20.10 a one-shot request is answered at the
//! stats collector's next 1-second tick, so it takes ≈1 s (measured here: 12 containers read one
//! after the other took 12.0 s; the same 12 read concurrently took 1.03 s). Fetching stats per
//! request would make every `/stats` call a second long and let clients drive dockerd's load.
//!
//! ## Bounded cost
//! - At most `stats_concurrency` (K) requests are in flight against dockerd at any time: one
//!   cycle reads through `buffer_unordered(K)`, and cycles never overlap. Because concurrent
//!   requests share a collector tick, a cycle over N agents takes about ⌈N / K⌉ seconds
//!   (measured here with 32 containers: K = 1 → 31.9 s, K = 8 → 3.7 s, K = 32 → 0.69 s; dockerd
//!   spent ≈ 1 ms of CPU per reading whatever K). K sets how fast a cycle completes and how
//!   many connections dockerd holds, not how much work a cycle costs it.
//! - At most `stats_readings_per_second` (R) readings start per second. dockerd's work per
//!   reading is roughly fixed, so R bounds the time it spends on stats whatever the fleet's size;
//!   K alone would not: in a 1,000-agent benchmark run with K = 32 and no pacing, cycles ran
//!   back to back (23,251 readings in the run) and a reading took 2.5 s on average, because
//!   dockerd was busy.
//!   A fleet of N agents is sampled every max(interval, N / R): with the defaults (5 s, 20/s)
//!   that is every 5 s up to 100 running agents and every 50 s at 1,000, and
//!   `sample_age_seconds` says how old a sample is.
//! - A tick that comes while a cycle is still running is skipped, not queued; skipped ticks are
//!   counted ([`StatsBoard::skipped_cycles`]). So a fleet too large for the interval is sampled
//!   less often, never with more load.
//! - Each reading is bounded by [`READING_TIMEOUT`], so a hung call holds one of the K slots for
//!   at most that long.
//!
//! ## Why a tokio task and not an actor
//! Nothing sends the sampler messages: readers go to the board, and the sampler finds its work in
//! the directory. An actor's mailbox would be unused machinery, and `run_interval` plus a busy
//! flag would need the same bookkeeping as here. The task is one `select!` loop over the
//! interval, the in-flight cycle and a stop signal; counting skipped ticks falls out of it (a
//! tick that fires while a cycle is in flight), and `MissedTickBehavior::Skip` covers ticks
//! missed while the thread itself was busy. It runs on an arbiter thread of its own, so decoding
//! thousands of stats bodies never delays the registry, sharing and supervisor actors. The
//! [`Sampler`] handle owns it: [`Fleet::shutdown`] stops it first (before the agent actors), and
//! dropping the handle stops it too.
//!
//! ## CPU percentage and freshness
//! Docker reports cumulative CPU counters, so a percentage needs two readings of the same
//! container: `(Δcpu_total / Δsystem_cpu) × online_cpus × 100` ([`cpu_percent`]; 100 = one
//! full CPU, as `docker stats` shows it). Like `kubectl top`, an agent has no stats until two
//! readings of its current container exist: one to two periods after it starts, [`Fleet::stats`]
//! answers [`FleetError::NotReady`] (503 with `Retry-After`), rather than a made-up 0 % or a
//! Docker call of its own. Samples of agents that stopped, were deleted or now run another
//! container are dropped at the next cycle, and [`Fleet::stats`] checks the snapshot anyway.
//! When Docker fails, the last sample is kept and its age shows in `sample_age_seconds`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Arbiter, ArbiterHandle};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures_util::future::{BoxFuture, FutureExt};
use futures_util::{StreamExt, stream};
use tokio::sync::{oneshot, watch};
use tokio::time::MissedTickBehavior;
use tracing::{debug, warn};

use crate::access::Action;
use crate::config::FleetConfig;
use crate::directory::Directory;
use crate::error::FleetError;
use crate::fleet::Fleet;
use crate::model::{AgentId, Principal, Status};
use crate::runtime::{ContainerRuntime, RuntimeError, StatsReading};

/// Longest one stats reading may take before it counts as failed (also capped by the Docker
/// timeout). A reading normally takes about a second.
pub const READING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Sampler::shutdown`] waits for the sampling task to end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// CPU use between two readings of the same container, in percent of one CPU (a container busy
/// on two CPUs shows 200). `None` when the two cannot be compared: the counters went backwards
/// (the container restarted) or no host time passed between them.
pub fn cpu_percent(previous: &StatsReading, current: &StatsReading) -> Option<f64> {
    let cpu = current.cpu_total_ns.checked_sub(previous.cpu_total_ns)?;
    let system = current.system_cpu_ns.checked_sub(previous.system_cpu_ns)?;
    if system == 0 {
        return None;
    }
    Some(cpu as f64 / system as f64 * f64::from(current.online_cpus.max(1)) * 100.0)
}

/// `used` as a percentage of `limit`; 0 when the limit is unknown.
pub fn memory_percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        used as f64 / limit as f64 * 100.0
    }
}

/// The latest sample of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The container the reading is of; a sample of another container is stale.
    pub container_id: String,
    pub reading: StatsReading,
    /// `None` until two readings of this container exist.
    pub cpu_percent: Option<f64>,
    pub memory_percent: f64,
}

/// One agent's stats, as [`Fleet::stats`] answers them.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentStats {
    /// Percent of one CPU, over the last sampling period.
    pub cpu_percent: f64,
    /// Page cache excluded.
    pub memory_used_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_percent: f64,
    pub network_rx_bytes: u64,
    pub network_tx_bytes: u64,
    /// Since the container last started (from the agent's snapshot).
    pub uptime_seconds: u64,
    pub status: Status,
    /// When the reading was taken.
    pub sampled_at: DateTime<Utc>,
    pub sample_age_seconds: f64,
}

/// What the sampler has done so far, for `/metrics` and logs.
#[derive(Debug, Default)]
struct Counters {
    cycles: AtomicU64,
    skipped_cycles: AtomicU64,
    failed_readings: AtomicU64,
    last_cycle_micros: AtomicU64,
    /// Failed readings of the last cycle, to log a warning when failures start rather than on
    /// every cycle while Docker is down.
    last_cycle_failed: AtomicU64,
}

/// The latest sample of every running agent, shared by the sampler (the only writer) and every
/// reader (the Fleet, the Prometheus exporter). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatsBoard {
    /// Agent id → latest sample. Written only by the sampler, one entry at a time; readers take
    /// an `Arc` clone and never hold a shard lock across anything else.
    samples: Arc<DashMap<AgentId, Arc<Sample>>>,
    counters: Arc<Counters>,
}

impl StatsBoard {
    pub fn get(&self, agent: AgentId) -> Option<Arc<Sample>> {
        self.samples.get(&agent).map(|e| Arc::clone(e.value()))
    }

    /// Every sample, in no particular order.
    pub fn all(&self) -> Vec<(AgentId, Arc<Sample>)> {
        self.samples
            .iter()
            .map(|e| (*e.key(), Arc::clone(e.value())))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sampling cycles completed.
    pub fn cycles(&self) -> u64 {
        self.counters.cycles.load(Ordering::Relaxed)
    }

    /// Ticks skipped because the previous cycle was still running.
    pub fn skipped_cycles(&self) -> u64 {
        self.counters.skipped_cycles.load(Ordering::Relaxed)
    }

    /// Readings that failed or timed out (the agent's previous sample was kept).
    pub fn failed_readings(&self) -> u64 {
        self.counters.failed_readings.load(Ordering::Relaxed)
    }

    /// How long the last completed cycle took.
    pub fn last_cycle(&self) -> Duration {
        Duration::from_micros(self.counters.last_cycle_micros.load(Ordering::Relaxed))
    }

    /// Store a new reading, computing CPU % against the previous reading of the same container.
    /// A reading that cannot be compared (the container restarted) becomes the new baseline and
    /// keeps the last known percentage.
    fn record(&self, agent: AgentId, container_id: String, reading: StatsReading) {
        // The shard guard is dropped at the end of this statement, before the insert below.
        let previous = self.get(agent);
        let cpu = match previous.as_deref() {
            Some(prev) if prev.container_id == container_id => {
                cpu_percent(&prev.reading, &reading).or(prev.cpu_percent)
            }
            _ => None,
        };
        let sample = Sample {
            container_id,
            memory_percent: memory_percent(reading.memory_used_bytes, reading.memory_limit_bytes),
            reading,
            cpu_percent: cpu,
        };
        self.samples.insert(agent, Arc::new(sample));
    }

    /// Keep only the samples of `targets` (running agents, with their current container).
    fn retain(&self, targets: &[Target]) {
        let running: HashMap<AgentId, &str> = targets
            .iter()
            .map(|t| (t.agent, t.container.as_str()))
            .collect();
        self.samples
            .retain(|id, s| running.get(id) == Some(&s.container_id.as_str()));
    }

    fn forget(&self, agent: AgentId) {
        self.samples.remove(&agent);
    }
}

/// A running agent's container, to be sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub agent: AgentId,
    pub container: String,
}

/// What the sampler needs from the rest of the fleet: which containers to sample, and one
/// reading of one. The fleet's implementation reads the directory and asks the container
/// runtime; tests substitute their own.
#[async_trait]
pub(crate) trait Probe: Send + Sync + 'static {
    /// The running agents and their containers, now.
    fn targets(&self) -> Vec<Target>;
    /// One one-shot reading.
    async fn read(&self, container: &str) -> Result<StatsReading, RuntimeError>;
}

struct FleetProbe {
    directory: Directory,
    runtime: Arc<dyn ContainerRuntime>,
}

#[async_trait]
impl Probe for FleetProbe {
    fn targets(&self) -> Vec<Target> {
        self.directory
            .all()
            .into_iter()
            .filter(|v| v.status == Status::Running)
            .filter_map(|v| {
                Some(Target {
                    agent: v.record.id,
                    container: v.container_id.clone()?,
                })
            })
            .collect()
    }

    async fn read(&self, container: &str) -> Result<StatsReading, RuntimeError> {
        self.runtime.stats(container).await
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    interval: Duration,
    concurrency: usize,
    readings_per_second: u32,
    reading_timeout: Duration,
}

/// The handle that owns the sampling task (see the module doc).
pub(crate) struct Sampler {
    board: StatsBoard,
    interval: Duration,
    /// Set to `true` to stop the task; the task also stops when this sender is dropped.
    stop: watch::Sender<bool>,
    /// Fires when the task has ended; taken by the first [`Sampler::shutdown`].
    done: Mutex<Option<oneshot::Receiver<()>>>,
    /// The sampler's own thread, stopped after the task.
    arbiter: ArbiterHandle,
}

impl Sampler {
    /// Start sampling the running agents of `directory`. Must run inside an actix `System`.
    pub(crate) fn start(
        config: &FleetConfig,
        runtime: Arc<dyn ContainerRuntime>,
        directory: Directory,
    ) -> Self {
        let settings = Settings {
            interval: config.stats_interval,
            concurrency: config.stats_concurrency,
            readings_per_second: config.stats_readings_per_second,
            reading_timeout: READING_TIMEOUT.min(config.docker_timeout),
        };
        Self::start_with(Arc::new(FleetProbe { directory, runtime }), settings)
    }

    fn start_with(probe: Arc<dyn Probe>, settings: Settings) -> Self {
        let settings = Settings {
            interval: settings.interval.max(Duration::from_millis(10)),
            concurrency: settings.concurrency.max(1),
            readings_per_second: settings.readings_per_second.max(1),
            ..settings
        };
        let board = StatsBoard::default();
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let arbiter = Arbiter::new();
        let task = run(probe, board.clone(), settings, stop_rx);
        arbiter.spawn(async move {
            task.await;
            let _ = done_tx.send(());
        });
        Self {
            board,
            interval: settings.interval,
            stop,
            done: Mutex::new(Some(done_rx)),
            arbiter: arbiter.handle(),
        }
    }

    pub(crate) fn board(&self) -> &StatsBoard {
        &self.board
    }

    /// Stop sampling: the cycle in flight is cancelled (its Docker requests are dropped) and the
    /// thread ends. Waits (bounded) for the task to finish; later calls return at once.
    pub(crate) async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let done = self.done.lock().ok().and_then(|mut d| d.take());
        if let Some(done) = done
            && tokio::time::timeout(SHUTDOWN_WAIT, done).await.is_err()
        {
            warn!("stats sampler did not stop in time");
        }
        self.arbiter.stop();
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.arbiter.stop();
    }
}

/// The sampling loop: one cycle per tick, never two at once, until told to stop.
async fn run(
    probe: Arc<dyn Probe>,
    board: StatsBoard,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    // The cycle in flight, if any: the busy flag.
    let mut cycle: Option<BoxFuture<'static, ()>> = None;
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            _ = tick.tick() => {
                if cycle.is_some() {
                    board.counters.skipped_cycles.fetch_add(1, Ordering::Relaxed);
                    debug!("stats cycle still running; tick skipped");
                } else {
                    cycle = Some(sample_all(probe.clone(), board.clone(), settings).boxed());
                }
            }
            () = in_flight(&mut cycle) => cycle = None,
        }
    }
    debug!("stats sampler stopped");
}

/// Resolves when the cycle in flight ends; never, when there is none.
async fn in_flight(cycle: &mut Option<BoxFuture<'static, ()>>) {
    match cycle {
        Some(cycle) => cycle.await,
        None => std::future::pending().await,
    }
}

/// One cycle: read every running agent, at most `concurrency` at a time and starting at most
/// `readings_per_second` a second.
async fn sample_all(probe: Arc<dyn Probe>, board: StatsBoard, settings: Settings) {
    let started = Instant::now();
    let targets = probe.targets();
    board.retain(&targets);
    let count = targets.len();
    // One tick per reading; the first is immediate. `buffer_unordered` pulls the next target
    // (and so waits for the next tick) only when one of its slots is free.
    let mut pace = tokio::time::interval(Duration::from_secs(1) / settings.readings_per_second);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ticks = stream::unfold(pace, |mut pace| async move {
        pace.tick().await;
        Some(((), pace))
    });
    let readings = stream::iter(targets)
        .zip(ticks)
        .map(|(target, ())| {
            let probe = probe.clone();
            async move {
                let result =
                    tokio::time::timeout(settings.reading_timeout, probe.read(&target.container))
                        .await;
                (target, result)
            }
        })
        .buffer_unordered(settings.concurrency);
    let failed = readings
        .fold(0u64, |failed, (target, result)| {
            let failed = match result {
                Ok(Ok(reading)) => {
                    board.record(target.agent, target.container, reading);
                    failed
                }
                // Removed between the snapshot and the call: nothing to sample any more.
                Ok(Err(RuntimeError::NotFound(_))) => {
                    board.forget(target.agent);
                    failed
                }
                Ok(Err(error)) => {
                    debug!(agent = %target.agent, %error, "stats reading failed");
                    failed + 1
                }
                Err(_) => {
                    debug!(agent = %target.agent, "stats reading timed out");
                    failed + 1
                }
            };
            std::future::ready(failed)
        })
        .await;
    // Agents that stopped or went away while the cycle ran.
    board.retain(&probe.targets());

    let counters = &board.counters;
    counters.cycles.fetch_add(1, Ordering::Relaxed);
    counters
        .failed_readings
        .fetch_add(failed, Ordering::Relaxed);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    counters.last_cycle_micros.store(micros, Ordering::Relaxed);
    let before = counters.last_cycle_failed.swap(failed, Ordering::Relaxed);
    if failed > 0 && before == 0 {
        warn!(
            failed,
            agents = count,
            "stats readings failed; keeping the previous samples"
        );
    }
    debug!(agents = count, failed, elapsed = ?started.elapsed(), "stats cycle done");
}

impl Fleet {
    /// The latest stats of the agent called `name` (anyone who may read it), answered from the
    /// board at once.
    ///
    /// `NotFound` if invisible; `Conflict` if the agent is not running; `NotReady` (retry after
    /// one sampling period) if it is running but two readings of its current container do not
    /// exist yet.
    pub fn stats(&self, who: &Principal, name: &str) -> Result<AgentStats, FleetError> {
        let view = self.agent(who, name, Action::Read)?.view;
        if view.status != Status::Running {
            return Err(FleetError::Conflict(format!(
                "agent '{name}' is not running (it is {}); stats are sampled only while it runs",
                view.status.as_str()
            )));
        }
        let sampler = &self.inner.stats;
        let not_ready = || {
            // One sampling period: the interval, or longer when the fleet is too large for it.
            let period = sampler.interval.max(sampler.board.last_cycle());
            let secs = period.as_secs_f64().ceil().max(1.0) as u64;
            FleetError::NotReady {
                detail: format!(
                    "no stats for agent '{name}' yet: it is sampled every {secs} s and needs two \
                     readings after it starts; retry in {secs} s"
                ),
                retry_after_secs: secs,
            }
        };
        let sample = sampler
            .board
            .get(view.record.id)
            .filter(|s| view.container_id.as_deref() == Some(s.container_id.as_str()))
            .ok_or_else(not_ready)?;
        let cpu_percent = sample.cpu_percent.ok_or_else(not_ready)?;
        let now = Utc::now();
        let reading = &sample.reading;
        let uptime = view
            .started_at
            .map_or(0, |t| (now - t).num_seconds().max(0) as u64);
        let age_ms = (now - reading.read_at).num_milliseconds().max(0);
        Ok(AgentStats {
            cpu_percent,
            memory_used_bytes: reading.memory_used_bytes,
            memory_limit_bytes: reading.memory_limit_bytes,
            memory_percent: sample.memory_percent,
            network_rx_bytes: reading.network_rx_bytes,
            network_tx_bytes: reading.network_tx_bytes,
            uptime_seconds: uptime,
            status: view.status,
            sampled_at: reading.read_at,
            sample_age_seconds: age_ms as f64 / 1000.0,
        })
    }

    /// The latest samples of every running agent, and the sampler's counters.
    pub fn stats_board(&self) -> &StatsBoard {
        self.inner.stats.board()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn reading(cpu_ms: u64, system_ms: u64, online_cpus: u32) -> StatsReading {
        StatsReading {
            read_at: Utc::now(),
            cpu_total_ns: cpu_ms * 1_000_000,
            system_cpu_ns: system_ms * 1_000_000,
            online_cpus,
            memory_used_bytes: 32 << 20,
            memory_limit_bytes: 128 << 20,
            network_rx_bytes: 10,
            network_tx_bytes: 20,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn cpu_percent_is_share_of_one_cpu() {
        // 1 s of wall time on a 2-CPU host: the host's counter advances 2 s. A container that
        // used 250 ms of CPU used a quarter of one CPU.
        let p = cpu_percent(&reading(1_000, 10_000, 2), &reading(1_250, 12_000, 2));
        assert!(close(p.unwrap(), 25.0), "{p:?}");
        // Both CPUs fully busy: 200 %.
        let p = cpu_percent(&reading(0, 0, 2), &reading(2_000, 2_000, 2));
        assert!(close(p.unwrap(), 200.0), "{p:?}");
        // Idle.
        let p = cpu_percent(&reading(500, 0, 4), &reading(500, 4_000, 4));
        assert!(close(p.unwrap(), 0.0), "{p:?}");
    }

    #[test]
    fn cpu_percent_needs_comparable_readings() {
        // The container restarted: its counter went back.
        assert_eq!(
            cpu_percent(&reading(5_000, 1_000, 2), &reading(10, 2_000, 2)),
            None
        );
        // No host time passed.
        assert_eq!(
            cpu_percent(&reading(5, 1_000, 2), &reading(5, 1_000, 2)),
            None
        );
        // Host counter went back (should not happen; must not panic or go negative).
        assert_eq!(
            cpu_percent(&reading(5, 1_000, 2), &reading(6, 900, 2)),
            None
        );
    }

    #[test]
    fn memory_percent_of_limit() {
        assert!(close(memory_percent(32 << 20, 128 << 20), 25.0));
        assert!(close(memory_percent(5, 0), 0.0));
    }

    #[test]
    fn board_computes_cpu_per_container_and_keeps_it_over_a_restart() {
        let board = StatsBoard::default();
        let agent = AgentId::new();
        board.record(agent, "c1".into(), reading(1_000, 10_000, 2));
        assert_eq!(board.get(agent).unwrap().cpu_percent, None);
        board.record(agent, "c1".into(), reading(1_500, 12_000, 2));
        let cpu = board.get(agent).unwrap().cpu_percent.unwrap();
        assert!(close(cpu, 50.0), "{cpu}");
        assert!(close(board.get(agent).unwrap().memory_percent, 25.0));
        // Same container restarted (counters reset): the last percentage is kept.
        board.record(agent, "c1".into(), reading(10, 14_000, 2));
        assert!(close(board.get(agent).unwrap().cpu_percent.unwrap(), 50.0));
        // A new container starts from nothing.
        board.record(agent, "c2".into(), reading(20, 16_000, 2));
        assert_eq!(board.get(agent).unwrap().cpu_percent, None);
        // A target list without the agent drops its sample; one with another container too.
        board.retain(&[Target {
            agent,
            container: "c3".into(),
        }]);
        assert!(board.is_empty());
    }

    /// A probe with `n` running agents whose readings each take `delay`, counting how many
    /// are in flight at once.
    struct SlowProbe {
        targets: Mutex<Vec<Target>>,
        delay: Duration,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
        reads: AtomicUsize,
        cpu: AtomicU64,
    }

    impl SlowProbe {
        fn new(n: usize, delay: Duration) -> Arc<Self> {
            let targets = (0..n)
                .map(|i| Target {
                    agent: AgentId::new(),
                    container: format!("c{i}"),
                })
                .collect();
            Arc::new(Self {
                targets: Mutex::new(targets),
                delay,
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
                reads: AtomicUsize::new(0),
                cpu: AtomicU64::new(0),
            })
        }
    }

    #[async_trait]
    impl Probe for SlowProbe {
        fn targets(&self) -> Vec<Target> {
            self.targets.lock().unwrap().clone()
        }

        async fn read(&self, _: &str) -> Result<StatsReading, RuntimeError> {
            /// Counts a reading out when it ends, also when it is cancelled.
            struct InFlight<'a>(&'a AtomicUsize);
            impl Drop for InFlight<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let _in_flight = InFlight(&self.in_flight);
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.reads.fetch_add(1, Ordering::SeqCst);
            // Every reading: 100 ms more CPU over 1 s more host time on 1 CPU → 10 %.
            let step = self.cpu.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(reading(step * 100, step * 1_000, 1))
        }
    }

    async fn wait_for(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix::test]
    async fn sampler_bounds_concurrency_and_skips_ticks_while_busy() {
        // 12 agents, 3 at a time, 60 ms a reading: a cycle takes ≈ 240 ms, the interval is
        // 20 ms, so ticks come while cycles run.
        let probe = SlowProbe::new(12, Duration::from_millis(60));
        let settings = Settings {
            interval: Duration::from_millis(20),
            concurrency: 3,
            readings_per_second: 1_000,
            reading_timeout: Duration::from_secs(5),
        };
        let sampler = Sampler::start_with(probe.clone(), settings);
        let board = sampler.board().clone();
        wait_for("two cycles", || board.cycles() >= 2).await;

        assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 3);
        assert!(board.skipped_cycles() > 0);
        assert_eq!(board.len(), 12);
        assert_eq!(board.failed_readings(), 0);
        assert!(board.all().iter().all(|(_, s)| s.cpu_percent.is_some()));

        // An agent that stops is dropped at the next cycle.
        let gone = probe.targets.lock().unwrap().remove(0);
        let cycles = board.cycles();
        wait_for("next cycle", || board.cycles() > cycles).await;
        assert!(board.get(gone.agent).is_none());
        assert_eq!(board.len(), 11);

        // Shutdown stops the task: no reading happens afterwards.
        sampler.shutdown().await;
        let reads = probe.reads.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(probe.reads.load(Ordering::SeqCst), reads);
        assert_eq!(probe.in_flight.load(Ordering::SeqCst), 0);
    }

    #[actix::test]
    async fn sampler_starts_at_most_r_readings_a_second() {
        // 21 instant readings at 50 a second, however many may be in flight: the 21st starts
        // 20 × 20 ms = 400 ms after the first, so a cycle cannot end sooner.
        let probe = SlowProbe::new(21, Duration::ZERO);
        let settings = Settings {
            interval: Duration::from_secs(60),
            concurrency: 32,
            readings_per_second: 50,
            reading_timeout: Duration::from_secs(5),
        };
        let started = Instant::now();
        let sampler = Sampler::start_with(probe.clone(), settings);
        let board = sampler.board().clone();
        wait_for("one cycle", || board.cycles() >= 1).await;
        let elapsed = started.elapsed();
        assert_eq!(probe.reads.load(Ordering::SeqCst), 21);
        assert!(
            board.last_cycle() >= Duration::from_millis(400),
            "{:?}",
            board.last_cycle()
        );
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        sampler.shutdown().await;
    }
}
