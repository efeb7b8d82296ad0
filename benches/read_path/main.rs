//! Criterion micro-benchmarks of flotilla's own cost on the request path, with no Docker daemon:
//! the real [`Fleet`] (embedded in-memory store, actors, directory, access index) over an
//! in-memory container runtime ([`memory_runtime`]), filled with 100 and 1,000 agents.
//!
//! - `actor`: a command's round trip from the `Fleet` handle to an agent actor and back
//!   (`start` of a running agent: the actor re-reads its container — a map lookup here — and
//!   answers `AlreadyRunning`);
//! - `access`: the access table for an admin, the owner, a shared user and a stranger;
//! - `directory`: one agent by name with its access check, and the whole list (admin: every
//!   agent; a user: the tenth they own) as `GET /api/agents` asks for it;
//! - `json`: the `GET /api/agents` body (the route's own `AgentSummary` type) built and
//!   serialised, and one `GET /api/agents/{name}` body;
//! - `metrics`: one `/metrics` scrape's text (every per-agent series, from the snapshots and
//!   the stats samples);
//! - `auth`: what the `Auth` extractor does per request — the JWT check and the per-user rate
//!   limiter.
//!
//! Run with `cargo bench --bench read_path` (README, "Benchmarks").

// Benchmarks are not product code: failing fast on a broken set-up is what they should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod memory_runtime;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use flotilla::auth::Auth;
use flotilla::auth::limiter::ApiLimiter;
use flotilla::auth::token::{Claims, TokenService};
use flotilla::routes::agents::{AgentDetail, AgentSummary};
use flotilla_actors::{Action, Fleet, FleetConfig, NewAgent, Principal, Role};

use memory_runtime::MemoryRuntime;

/// Fleet sizes the list and JSON benches run at.
const SIZES: [usize; 2] = [100, 1000];

fn admin() -> Principal {
    Principal {
        username: "admin".into(),
        role: Role::Admin,
    }
}

fn user(email: &str) -> Principal {
    Principal {
        username: email.into(),
        role: Role::User,
    }
}

fn auth_of(principal: Principal) -> Auth {
    Auth {
        claims: Claims {
            sub: principal.username.clone(),
            iat: 0,
            nbf: 0,
            exp: i64::MAX,
            jti: "bench".into(),
            ver: 0,
            iss: "flotilla".into(),
            aud: "flotilla-api".into(),
        },
        principal,
    }
}

/// A fleet of `n` agents on the memory runtime: every tenth owned by `ana@example.com`, the
/// rest by the admin, each shared with `bo@example.com` when its index is a multiple of 7.
/// Agent `i` is called `agent-{i:05}`.
fn fleet_of(sys: &actix::SystemRunner, n: usize, dir: &std::path::Path) -> Fleet {
    sys.block_on(async {
        let mut config = FleetConfig::new(format!("bench-{n}"), "mem://");
        config.data_dir = dir.to_path_buf();
        config.templates_dir = dir.join("no-templates");
        config.ssh_ports = 10_000..=20_000;
        // Sampled (from the memory runtime) so /metrics carries every per-agent series.
        config.stats_interval = Duration::from_secs(2);
        let fleet = Fleet::start(config, Arc::new(MemoryRuntime::default()))
            .await
            .expect("fleet on the memory runtime");
        let ana = user("ana@example.com");
        for i in 0..n {
            let who = if i % 10 == 0 { ana.clone() } else { admin() };
            let name = format!("agent-{i:05}");
            fleet
                .create_agent(
                    &who,
                    NewAgent {
                        name: name.clone(),
                        cpu: Some("0.5".into()),
                        memory: Some("512m".into()),
                        github_repo: Some("example/research-tools".into()),
                        custom_instructions: Some("You research things.".into()),
                        tags: vec!["research".into(), format!("team-{}", i % 8)],
                        ..NewAgent::default()
                    },
                )
                .await
                .expect("create");
            if i % 7 == 0 {
                fleet
                    .share_agent(&who, &name, "bo@example.com")
                    .await
                    .expect("share");
            }
        }
        fleet
    })
}

fn actor(c: &mut Criterion, sys: &actix::SystemRunner, fleet: &Fleet) {
    let mut group = c.benchmark_group("actor");
    let admin = admin();
    group.bench_function("round_trip_start_running_agent", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let outcome = fleet.start_agent(&admin, "agent-00001").await.unwrap();
                    black_box(outcome);
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

fn access(c: &mut Criterion, fleet: &Fleet) {
    let mut group = c.benchmark_group("access");
    // agent-00070: owned by ana (70 % 10 == 0), shared with bo (70 % 7 == 0).
    let view = fleet
        .agent(&admin(), "agent-00070", Action::Read)
        .unwrap()
        .view;
    for (label, who) in [
        ("admin", admin()),
        ("owner", user("ana@example.com")),
        ("shared", user("bo@example.com")),
        ("stranger", user("eve@example.com")),
    ] {
        group.bench_function(BenchmarkId::new("authorize_read", label), |b| {
            b.iter(|| black_box(fleet.access().authorize(&who, &view, Action::Read)).is_ok())
        });
    }
    group.finish();
}

fn directory(c: &mut Criterion, fleets: &[(usize, Fleet)]) {
    let mut group = c.benchmark_group("directory");
    let (admin, ana) = (admin(), user("ana@example.com"));
    if let Some((_, fleet)) = fleets.last() {
        group.bench_function("get_one_by_name", |b| {
            b.iter(|| black_box(fleet.agent(&admin, black_box("agent-00421"), Action::Read)))
        });
    }
    for (n, fleet) in fleets {
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::new("list_admin", n), fleet, |b, fleet| {
            b.iter(|| black_box(fleet.list_agents(&admin, &[])))
        });
        group.bench_with_input(BenchmarkId::new("list_owner", n), fleet, |b, fleet| {
            b.iter(|| black_box(fleet.list_agents(&ana, &[])))
        });
    }
    group.finish();
}

fn json(c: &mut Criterion, fleets: &[(usize, Fleet)]) {
    let mut group = c.benchmark_group("json");
    let auth = auth_of(admin());
    for (n, fleet) in fleets {
        let visible = fleet.list_agents(&auth.principal, &[]);
        let size = serde_json::to_vec(&AgentSummary::list(&auth, &visible))
            .unwrap()
            .len();
        eprintln!("GET /api/agents body with {n} agents: {size} bytes");
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::new("agent_list", n), &visible, |b, visible| {
            b.iter(|| {
                let body = AgentSummary::list(&auth, visible);
                black_box(serde_json::to_vec(&body).unwrap())
            })
        });
        group.bench_with_input(
            BenchmarkId::new("list_then_agent_list", n),
            fleet,
            |b, fleet| {
                b.iter(|| {
                    let visible = fleet.list_agents(&auth.principal, &[]);
                    let body = AgentSummary::list(&auth, &visible);
                    black_box(serde_json::to_vec(&body).unwrap())
                })
            },
        );
    }
    if let Some((_, fleet)) = fleets.last() {
        let visible = fleet
            .agent(&auth.principal, "agent-00070", Action::Read)
            .unwrap();
        group.throughput(Throughput::Elements(1));
        group.bench_function("agent_detail", |b| {
            b.iter(|| {
                let shares = fleet.shares_of(visible.view.record.id);
                let body = AgentDetail::with_shares(&auth, &visible, &shares);
                black_box(serde_json::to_vec(&body).unwrap())
            })
        });
    }
    group.finish();
}

fn metrics(c: &mut Criterion, fleets: &[(usize, Fleet)]) {
    let mut group = c.benchmark_group("metrics");
    for (n, fleet) in fleets {
        let size = fleet.metrics().encode().unwrap().len();
        eprintln!("/metrics with {n} agents: {size} bytes");
        group.throughput(Throughput::Elements(*n as u64));
        group.bench_with_input(BenchmarkId::new("encode", n), fleet, |b, fleet| {
            b.iter(|| black_box(fleet.metrics().encode().unwrap()))
        });
    }
    group.finish();
}

fn auth(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth");
    let tokens = TokenService::new(
        b"bench-secret-0123456789abcdef-0123456789",
        Duration::from_secs(3600),
    )
    .unwrap();
    let (token, _) = tokens.issue("ana@example.com", 0).unwrap();
    group.bench_function("jwt_verify", |b| {
        b.iter(|| black_box(tokens.verify(black_box(&token))).is_ok())
    });
    let limiter = ApiLimiter::new(u32::MAX, u32::MAX);
    group.bench_function("api_limiter_check", |b| {
        b.iter(|| black_box(limiter.check(black_box("ana@example.com"))).is_ok())
    });
    group.finish();
}

/// This process's private resident memory (`RssAnon`), in bytes.
fn anon_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("RssAnon:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let sys = actix::System::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets: Vec<(usize, Fleet)> = SIZES
        .iter()
        .map(|&n| {
            let sub = dir.path().join(n.to_string());
            let before = anon_bytes();
            let fleet = fleet_of(&sys, n, &sub);
            let grown = anon_bytes().saturating_sub(before);
            eprintln!(
                "fleet of {n} agents on the memory runtime: private memory grew {:.1} MB ({} bytes per agent)",
                grown as f64 / 1e6,
                grown / n as u64
            );
            (n, fleet)
        })
        .collect();
    let (_, largest) = fleets.last().expect("a fleet");
    // Let a stats cycle sample every running agent.
    std::thread::sleep(Duration::from_secs(3));

    actor(&mut c, &sys, largest);
    access(&mut c, largest);
    directory(&mut c, &fleets);
    json(&mut c, &fleets);
    metrics(&mut c, &fleets);
    auth(&mut c);

    for (_, fleet) in &fleets {
        sys.block_on(fleet.shutdown());
    }
    c.final_summary();
}
