//! Fleet-wide views of the caller's agents: `GET /api/agents/context-stats` (context-window use
//! from the runtimes' own transcripts, see `flotilla_actors::context`) and
//! `GET /api/agents/autonomy-status`. Both list only agents the caller can see, and are
//! registered before `/api/agents/{name}` (their names are reserved agent names).

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use flotilla_actors::context::AgentContext;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One agent's context-window use (camelCase: the reference platform's shape).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentContextBody {
    pub name: String,
    /// `running`, `stopped`, `paused` or `restarting`.
    pub status: &'static str,
    /// `offline` (not running), `active` (its transcript changed in the last 60 s) or `idle`.
    pub activity_state: &'static str,
    /// `contextUsed / contextMax` in percent, one decimal.
    pub context_percent: f64,
    /// Tokens in the context at the runtime's last answer (0 when unknown).
    pub context_used: u64,
    /// The model's context window (Claude: 200000, or 1000000 for `[1m]` models; Gemini:
    /// 1048576).
    pub context_max: u64,
    /// When the newest transcript last changed (ISO 8601 UTC), if there is one.
    pub last_activity_time: Option<String>,
}

impl From<AgentContext> for AgentContextBody {
    fn from(c: AgentContext) -> Self {
        Self {
            name: c.name,
            status: c.status.as_str(),
            activity_state: c.activity.as_str(),
            context_percent: c.context_percent,
            context_used: c.context_used,
            context_max: c.context_max,
            last_activity_time: c.last_activity.map(iso),
        }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextStatsBody {
    pub agents: Vec<AgentContextBody>,
}

/// Context-window use of every agent the caller can see, read from the runtimes' transcripts
/// (Claude Code's `~/.claude/projects/**/*.jsonl`, Gemini CLI's `~/.gemini/tmp/*/chats/`).
/// Cached for a few seconds per agent; an agent whose transcripts cannot be read in time shows
/// its last known figures (or zeros).
#[utoipa::path(get, path = "/api/agents/context-stats", tag = "agents", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every visible agent's figures, by name", body = ContextStatsBody),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Over the per-user rate limit", body = ErrorBody)))]
pub async fn context_stats(
    auth: Auth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let agents = state.fleet.context_stats(&auth.principal).await;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ContextStatsBody {
            agents: agents.into_iter().map(AgentContextBody::from).collect(),
        }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AutonomyStatusEntry {
    pub autonomy_enabled: bool,
}

/// Agent name → its autonomy setting.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
pub struct AutonomyStatusBody(pub BTreeMap<String, AutonomyStatusEntry>);

/// Whether autonomy is on, for every non-system agent the caller can see (from the agents'
/// snapshots; no Docker call).
#[utoipa::path(get, path = "/api/agents/autonomy-status", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Agent name → its autonomy setting", body = AutonomyStatusBody, example = json!({"research-agent": {"autonomy_enabled": true}})),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Over the per-user rate limit", body = ErrorBody)))]
pub async fn autonomy_status(
    auth: Auth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let map = state
        .fleet
        .list_agents(&auth.principal, &[])
        .into_iter()
        .filter(|v| !v.view.record.system)
        .map(|v| {
            (
                v.view.record.name.clone(),
                AutonomyStatusEntry {
                    autonomy_enabled: v.view.record.autonomy_enabled,
                },
            )
        })
        .collect();
    Ok(HttpResponse::Ok().json(AutonomyStatusBody(map)))
}
