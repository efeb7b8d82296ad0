//! Agent stats: `GET /api/agents/{name}/stats`, answered at once from the stats sampler's latest
//! sample (never a Docker call per request; see `flotilla_actors::stats`). Anyone who may read
//! the agent may read its stats; a stopped agent is 409, and a running agent whose first two
//! samples are not taken yet is 503 with `Retry-After` (one sampling period).

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::stats::AgentStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// An agent's resource use, as last sampled (the reference platform's shape, plus the sample's
/// time and age).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsBody {
    /// CPU use over the last sampling period, in percent of one CPU (two busy CPUs show 200).
    pub cpu_percent: f64,
    /// Memory in use, page cache excluded.
    pub memory_used_bytes: u64,
    /// The agent's memory limit.
    pub memory_limit_bytes: u64,
    pub memory_percent: f64,
    /// Received, summed over the container's interfaces since it started.
    pub network_rx_bytes: u64,
    /// Sent, summed over the container's interfaces since it started.
    pub network_tx_bytes: u64,
    /// Since the container last started.
    pub uptime_seconds: u64,
    /// Always `running` (other states answer 409).
    pub status: &'static str,
    /// When the sample was taken.
    pub sampled_at: DateTime<Utc>,
    /// How old the sample is; about one sampling period at most while Docker answers.
    pub sample_age_seconds: f64,
}

/// Two decimals: what a person reads, without float noise.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl From<AgentStats> for StatsBody {
    fn from(s: AgentStats) -> Self {
        Self {
            cpu_percent: round2(s.cpu_percent),
            memory_used_bytes: s.memory_used_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            memory_percent: round2(s.memory_percent),
            network_rx_bytes: s.network_rx_bytes,
            network_tx_bytes: s.network_tx_bytes,
            uptime_seconds: s.uptime_seconds,
            status: s.status.as_str(),
            sampled_at: s.sampled_at,
            sample_age_seconds: round2(s.sample_age_seconds),
        }
    }
}

/// The agent's latest CPU, memory and network figures (owner, admin or shared user).
#[utoipa::path(get, path = "/api/agents/{name}/stats", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses(
        (status = 200, body = StatsBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent is not running", body = ErrorBody),
        (status = 503, description = "No sample yet (the agent just started), or Docker unreachable; see Retry-After",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")))))]
pub async fn get(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let stats = state.fleet.stats(&auth.principal, &name)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(StatsBody::from(stats)))
}
