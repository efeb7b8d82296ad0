//! # flotilla-actors — the fleet runtime
//!
//! Everything that runs agents lives here; the HTTP server (`src/` of the root package) only
//! parses requests and calls the [`Fleet`] handle. This crate has no actix-web dependency.
//!
//! ```text
//!  Fleet (handle: reads from snapshots, commands to actors)
//!    ├─ Supervisor ─────── spawns/retires AgentActor × N, owns id → Addr map (DashMap);
//!    │                      restarts a crashed (panicked) one from the store and Docker
//!    ├─ AgentActor × N ─── one per agent: the only writer of its container, volumes and record;
//!    │                      runs each command alone and to completion (AtomicResponse);
//!    │                      publishes an AgentView to the Directory after every change
//!    ├─ RegistryActor ──── the only writer of agents, users, port leases, revoked tokens,
//!    │                      sealed credential vaults
//!    ├─ SharingActor ───── the only writer of shares; keeps the AccessIndex in step
//!    ├─ EventBus ───────── tokio broadcast of agent events
//!    ├─ credentials::Vault  the server's age key (data dir); agent actors seal/unseal vaults
//!    │                      with it on the blocking pool, inject them, re-inject at start
//!    ├─ ssh::Gateway ───── one thread: a listener per agent with valid SSH keys (on its leased
//!    │                      port); logins checked against the SshKeys mirror; shells and
//!    │                      commands run as Docker execs in the agent's container
//!    ├─ stats::Sampler ─── one task: one-shot Docker stats of running agents, K at a time,
//!    │                      every period → StatsBoard (read by /stats and /metrics)
//!    ├─ context ────────── context-window figures from the runtimes' transcripts (archive API),
//!    │                      cached per agent, refreshed on demand, bounded in time and bytes
//!    └─ metrics::Metrics ─ the Prometheus registry; per-agent series built at scrape time from
//!                          the Directory and StatsBoard (never from Docker)
//!  ContainerRuntime (trait) ── DockerRuntime (bollard)      Store ── SurrealDB (Surreal<Any>)
//! ```
//!
//! ## Invariants
//! - **One writer per agent.** Only an agent's actor changes its container, volumes or stored
//!   record; its commands are serialised by construction, so handlers need no locks.
//! - **Reads never queue behind writes.** List/get/access checks read the [`Directory`],
//!   [`AccessIndex`] and [`Accounts`] snapshots; they never wait for an actor or call Docker.
//! - **Registry first, nothing leaked.** A create writes its row (phase `provisioning`) and port
//!   lease before touching Docker and removes everything on failure; a delete marks the row
//!   `deleting` first. Recovery at start-up finishes any interrupted create or delete.
//! - **Identity is the id.** Volumes and rows are keyed by the immutable agent id; a rename
//!   moves nothing. Every Docker object carries the `flotilla.instance` label; an instance only
//!   sees its own.
//! - **No cycles.** Agent actors send to the registry and sharing actors, which never call back.
//! - **A crash costs one operation.** An agent actor whose handler panics is replaced by the
//!   supervisor with one rebuilt from its stored record and its container; the request gets
//!   503, other agents never notice. Removals that Docker interrupted are retried until done.
//! - **Secrets stay sealed.** Credential files are stored only as age ciphertext, held in
//!   zeroing, non-printing wrappers, and never appear in logs, errors, events or metrics.
//!
//! [`Directory`]: directory::Directory
//! [`AccessIndex`]: access::AccessIndex
//! [`Accounts`]: accounts::Accounts

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access;
pub mod accounts;
pub mod agent;
pub mod avatar;
pub mod config;
pub mod context;
pub mod credentials;
pub mod directory;
pub mod error;
pub mod events;
pub mod faults;
pub mod files;
pub mod fleet;
pub mod folders;
pub mod logs;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod runtime;
pub mod settings;
pub mod sharing;
pub mod ssh;
pub mod stats;
pub mod store;
pub mod supervisor;
pub mod templates;
pub mod users;
pub mod validate;
pub mod watcher;

pub use access::{AccessLevel, Action, Share};
pub use agent::messages::StartOutcome;
pub use config::FleetConfig;
pub use credentials::CredentialsInjection;
pub use error::FleetError;
pub use fleet::{Fleet, ListVersion, NewAgent, Orphan, Visible};
pub use model::{AgentId, AgentRecord, AgentRuntime, AgentView, Principal, Role, Status, User};
