//! Agent settings: autonomy, read-only mode and execution timeout. GETs are open to anyone who
//! can read the agent; PUTs to its owner and admins (never on system agents).

use actix_web::{HttpResponse, web};
use flotilla_actors::AgentRecord;
use flotilla_actors::agent::messages::{ConfigChange, ConfigOutcome};
use flotilla_actors::model::ReadOnlyPatterns;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// What a change did to the running agent: present in the answer to a PUT, absent from GETs.
/// (Two optional fields rather than an optional flattened object, whose schema — "null or an
/// object", merged into an object — no answer could satisfy.)
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ChangeEffect {
    /// The running container was recreated to apply the change (same agent, volumes and port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_recreated: Option<bool>,
    /// Part of the change reaches the runtime at the agent's next start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applies_on_next_start: Option<bool>,
}

impl From<ConfigOutcome> for ChangeEffect {
    fn from(o: ConfigOutcome) -> Self {
        Self {
            container_recreated: Some(o.container_recreated),
            applies_on_next_start: Some(o.applies_on_next_start),
        }
    }
}

// ---- autonomy ----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct AutonomyBody {
    pub agent_name: String,
    pub autonomy_enabled: bool,
    #[serde(flatten)]
    pub effect: ChangeEffect,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnabledRequest {
    pub enabled: bool,
}

fn autonomy_body(r: &AgentRecord, effect: Option<ChangeEffect>) -> AutonomyBody {
    AutonomyBody {
        agent_name: r.name.clone(),
        autonomy_enabled: r.autonomy_enabled,
        effect: effect.unwrap_or_default(),
    }
}

/// Whether the agent runs without asking for approval.
#[utoipa::path(get, path = "/api/agents/{name}/autonomy", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = AutonomyBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_autonomy(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(autonomy_body(&record, None)))
}

/// Turn autonomy on or off. Applied to the runtime at once (Claude Code's permission mode,
/// Gemini CLI's approval mode) and again on every start.
#[utoipa::path(put, path = "/api/agents/{name}/autonomy", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body = EnabledRequest,
    responses((status = 200, body = AutonomyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not the owner, or a system agent", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_autonomy(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: crate::routes::json::JsonObject<EnabledRequest>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state
        .fleet
        .configure(&auth.principal, &name, ConfigChange::Autonomy(body.enabled))
        .await?;
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(autonomy_body(&record, Some(outcome.into()))))
}

// ---- read-only ---------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyConfig {
    /// Globs of paths the runtime's hook refuses to write (none: every path).
    #[serde(default)]
    pub blocked_patterns: Vec<String>,
    /// Globs of paths the hook lets through even when blocked.
    #[serde(default)]
    pub allowed_patterns: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadOnlyBody {
    pub agent_name: String,
    pub enabled: bool,
    pub config: ReadOnlyConfig,
    #[serde(flatten)]
    pub effect: ChangeEffect,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyRequest {
    pub enabled: bool,
    /// Patterns for the runtime's hook; omitted keeps the stored ones.
    #[serde(default, deserialize_with = "crate::routes::json::object_only")]
    pub config: Option<ReadOnlyConfig>,
}

fn read_only_body(r: &AgentRecord, effect: Option<ChangeEffect>) -> ReadOnlyBody {
    ReadOnlyBody {
        agent_name: r.name.clone(),
        enabled: r.read_only_enabled,
        config: ReadOnlyConfig {
            blocked_patterns: r.read_only_patterns.blocked_patterns.clone(),
            allowed_patterns: r.read_only_patterns.allowed_patterns.clone(),
        },
        effect: effect.unwrap_or_default(),
    }
}

/// Whether the agent's workspace is read-only.
#[utoipa::path(get, path = "/api/agents/{name}/read-only", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = ReadOnlyBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_read_only(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(read_only_body(&record, None)))
}

/// Make the workspace read-only (or writable again). Enforced by the container: the workspace
/// volume is mounted read-only (the runtime's state directory and `/tmp` stay writable). A
/// running agent's container is recreated at once; a stopped one's at its next start. The
/// patterns also go to the runtime's hook, as a second layer.
#[utoipa::path(put, path = "/api/agents/{name}/read-only", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body = ReadOnlyRequest,
    responses((status = 200, body = ReadOnlyBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not the owner, or a system agent", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_read_only(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: crate::routes::json::JsonObject<ReadOnlyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = ConfigChange::ReadOnly {
        enabled: body.enabled,
        patterns: body.config.map(|c| ReadOnlyPatterns {
            blocked_patterns: c.blocked_patterns,
            allowed_patterns: c.allowed_patterns,
        }),
    };
    let outcome = state
        .fleet
        .configure(&auth.principal, &name, change)
        .await?;
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(read_only_body(&record, Some(outcome.into()))))
}

// ---- timeout -----------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct TimeoutBody {
    pub agent_name: String,
    pub execution_timeout_seconds: i64,
    pub execution_timeout_minutes: f64,
    #[serde(flatten)]
    pub effect: ChangeEffect,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutRequest {
    /// Whole seconds, 60–7200.
    pub execution_timeout_seconds: i64,
}

fn timeout_body(r: &AgentRecord, effect: Option<ChangeEffect>) -> TimeoutBody {
    TimeoutBody {
        agent_name: r.name.clone(),
        execution_timeout_seconds: r.execution_timeout_seconds,
        execution_timeout_minutes: (r.execution_timeout_seconds as f64 / 60.0 * 100.0).round()
            / 100.0,
        effect: effect.unwrap_or_default(),
    }
}

/// How long the runtime may spend on one task.
#[utoipa::path(get, path = "/api/agents/{name}/timeout", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = TimeoutBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_timeout(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(timeout_body(&record, None)))
}

/// Set the execution timeout (60–7200 s). Written to the agent's `flotilla.json` at once and
/// exported as `AGENT_EXECUTION_TIMEOUT` from its next start.
#[utoipa::path(put, path = "/api/agents/{name}/timeout", tag = "settings", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body = TimeoutRequest,
    responses((status = 200, body = TimeoutBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not the owner, or a system agent", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_timeout(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: crate::routes::json::JsonObject<TimeoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = ConfigChange::Timeout(body.execution_timeout_seconds);
    let outcome = state
        .fleet
        .configure(&auth.principal, &name, change)
        .await?;
    let record = state.fleet.settings_of(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(timeout_body(&record, Some(outcome.into()))))
}
