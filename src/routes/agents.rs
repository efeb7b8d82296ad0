//! Agent CRUD and lifecycle: list, create, get, delete, start, stop, rename. Shapes follow the
//! reference platform (REFERENCE.md); access follows DESIGN.md (invisible agents are 404).

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::{
    AccessLevel, Action, AgentView, FleetError, NewAgent, Share, StartOutcome, Visible,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::routes::auth::MessageResponse;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourcesBody {
    /// CPUs, e.g. `"2"` or `"0.5"`.
    pub cpu: String,
    /// Memory, e.g. `"4g"` or `"512m"`.
    pub memory: String,
}

/// An agent as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentSummary {
    pub name: String,
    /// Immutable id.
    pub id: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    /// `running`, `stopped`, `paused` or `restarting`.
    pub status: &'static str,
    /// SSH port leased to the agent.
    pub port: u16,
    pub created: DateTime<Utc>,
    pub resources: ResourcesBody,
    pub container_id: Option<String>,
    pub template: Option<String>,
    /// `claude-code` or `gemini-cli`.
    pub runtime: &'static str,
    pub runtime_model: Option<String>,
    pub owner: String,
    pub is_owner: bool,
    pub is_shared: bool,
    pub is_system: bool,
    pub autonomy_enabled: bool,
    pub read_only_enabled: bool,
    pub github_repo: Option<String>,
    /// `/api/agents/{name}/avatar?v=<version>`: changes when the avatar does.
    pub avatar_url: Option<String>,
    pub tags: Vec<String>,
}

/// A share of an agent with a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareBody {
    pub id: String,
    pub agent_name: String,
    pub shared_with_email: String,
    pub shared_by_email: String,
    pub created_at: DateTime<Utc>,
}

impl ShareBody {
    pub fn new(share: &Share, agent_name: &str) -> Self {
        Self {
            id: share.id.clone(),
            agent_name: agent_name.to_string(),
            shared_with_email: share.email.clone(),
            shared_by_email: share.shared_by.clone(),
            created_at: share.created_at,
        }
    }
}

/// An agent in detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub summary: AgentSummary,
    pub can_share: bool,
    pub can_delete: bool,
    /// Present for the owner and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<ShareBody>>,
}

impl AgentSummary {
    /// The `GET /api/agents` body: one summary per visible agent, in the order given.
    pub fn list(who: &Auth, visible: &[Visible]) -> Vec<Self> {
        visible
            .iter()
            .map(|v| Self::new(who, &v.view, v.level))
            .collect()
    }

    pub fn new(who: &Auth, view: &AgentView, level: AccessLevel) -> Self {
        let r = &view.record;
        Self {
            name: r.name.clone(),
            id: r.id.to_string(),
            agent_type: r.agent_type.clone(),
            status: view.status.as_str(),
            port: r.ssh_port,
            created: r.created,
            resources: ResourcesBody {
                cpu: r.resources.cpu.clone(),
                memory: r.resources.memory.clone(),
            },
            container_id: view.container_id.clone(),
            template: r.template.clone(),
            runtime: r.runtime.as_str(),
            runtime_model: r.runtime_model.clone(),
            owner: r.owner.clone(),
            is_owner: r.owner == who.principal.username,
            is_shared: level == AccessLevel::Shared,
            is_system: r.system,
            autonomy_enabled: r.autonomy_enabled,
            read_only_enabled: r.read_only_enabled,
            github_repo: r.github_repo.clone(),
            avatar_url: Some(crate::routes::avatar::avatar_url(&r.name, r.avatar_version)),
            tags: r.tags.clone(),
        }
    }
}

impl AgentDetail {
    fn new(who: &Auth, state: &AppState, visible: &Visible) -> Self {
        // Only managers see the shares: skip the lookup for everyone else.
        let shares = match visible.level {
            AccessLevel::Owner | AccessLevel::Admin => {
                state.fleet.shares_of(visible.view.record.id)
            }
            AccessLevel::Shared => Vec::new(),
        };
        Self::with_shares(who, visible, &shares)
    }

    /// The detail of `visible`, whose shares are `shares` (shown to its owner and admins only).
    pub fn with_shares(who: &Auth, visible: &Visible, shares: &[Share]) -> Self {
        let view = &visible.view;
        let manager = matches!(visible.level, AccessLevel::Owner | AccessLevel::Admin);
        let shares = manager.then(|| {
            shares
                .iter()
                .map(|s| ShareBody::new(s, &view.record.name))
                .collect()
        });
        Self {
            summary: AgentSummary::new(who, view, visible.level),
            can_share: manager,
            can_delete: manager && !view.record.system,
            shares,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated tags; agents with any of them are kept.
    pub tags: Option<String>,
}

/// Agents the caller can see (their own, those shared with them; admins see all), by name.
#[utoipa::path(get, path = "/api/agents", tag = "agents", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<AgentSummary>), (status = 401, body = ErrorBody)))]
pub async fn list(
    auth: Auth,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let tags: Vec<String> = query
        .tags
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let body = state
        .lists
        .get_or_build(&state.fleet, &auth.principal, tags, |visible| {
            serde_json::to_vec(&AgentSummary::list(&auth, visible)).map(Into::into)
        })
        .map_err(|e| FleetError::Internal(format!("serialising the agent list: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesRequest {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// Lower-case DNS label, 1–63 characters.
    pub name: String,
    /// Default `business-assistant`.
    #[serde(rename = "type")]
    pub agent_type: Option<String>,
    pub template: Option<String>,
    /// `claude-code` (default) or `gemini-cli`.
    pub runtime: Option<String>,
    pub runtime_model: Option<String>,
    /// Default `{"cpu": "2", "memory": "4g"}`.
    #[serde(default, deserialize_with = "crate::routes::json::object_only")]
    pub resources: Option<ResourcesRequest>,
    /// Written to the runtime's instructions file (`CLAUDE.md` / `GEMINI.md`).
    pub custom_instructions: Option<String>,
    /// `owner/repo`.
    pub github_repo: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Admin only: system agents cannot be deleted or renamed.
    pub system: Option<bool>,
}

/// Create an agent and start it.
#[utoipa::path(post, path = "/api/agents", tag = "agents", security(("bearer" = [])),
    request_body = CreateAgentRequest,
    responses((status = 200, body = AgentDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, description = "Docker unavailable", body = ErrorBody)))]
pub async fn create(
    auth: Auth,
    state: web::Data<AppState>,
    body: crate::routes::json::JsonObject<CreateAgentRequest>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let (cpu, memory) = b
        .resources
        .map(|r| (r.cpu, r.memory))
        .unwrap_or((None, None));
    let request = NewAgent {
        name: b.name,
        agent_type: b.agent_type,
        template: b.template,
        runtime: b.runtime,
        runtime_model: b.runtime_model,
        cpu,
        memory,
        custom_instructions: b.custom_instructions,
        github_repo: b.github_repo,
        tags: b.tags.unwrap_or_default(),
        system: b.system.unwrap_or(false),
    };
    let view = state.fleet.create_agent(&auth.principal, request).await?;
    let visible = Visible {
        level: state
            .fleet
            .access()
            .level(&auth.principal, &view)
            .unwrap_or(AccessLevel::Owner),
        view,
    };
    Ok(HttpResponse::Ok().json(AgentDetail::new(&auth, &state, &visible)))
}

/// One agent, with ownership, sharing and configuration flags.
#[utoipa::path(get, path = "/api/agents/{name}", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = AgentDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let visible = state.fleet.agent(&auth.principal, &name, Action::Read)?;
    Ok(HttpResponse::Ok().json(AgentDetail::new(&auth, &state, &visible)))
}

/// Delete an agent with its container, volumes, rows, port lease and shares.
#[utoipa::path(delete, path = "/api/agents/{name}", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user, or a system agent", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.fleet.delete_agent(&auth.principal, &name).await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: format!("Agent {name} deleted"),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    pub message: String,
    /// What became of the agent's credential vault: `success` (written into the workspace),
    /// `skipped` (the vault is empty, or the agent was already running) or `failed` (logged;
    /// the agent started without it).
    pub credentials_injection: &'static str,
    /// False when the agent was already running.
    pub started: bool,
}

/// Start an agent (idempotent), recreating its container if it is missing or stale.
#[utoipa::path(post, path = "/api/agents/{name}/start", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = StartResponse), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let outcome = state.fleet.start_agent(&auth.principal, &name).await?;
    Ok(HttpResponse::Ok().json(StartResponse {
        message: format!("Agent {name} started"),
        credentials_injection: outcome.credentials().as_str(),
        started: outcome != StartOutcome::AlreadyRunning,
    }))
}

/// Stop an agent (idempotent).
#[utoipa::path(post, path = "/api/agents/{name}/stop", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stop(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.fleet.stop_agent(&auth.principal, &name).await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: format!("Agent {name} stopped"),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub new_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenameResponse {
    pub message: String,
    pub old_name: String,
    pub new_name: String,
}

/// Rename an agent. Its data stays (volumes are keyed by the agent's id); the container is
/// renamed at once.
#[utoipa::path(put, path = "/api/agents/{name}/rename", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body = RenameRequest,
    responses((status = 200, body = RenameResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rename(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: crate::routes::json::JsonObject<RenameRequest>,
) -> Result<HttpResponse, ApiError> {
    let new_name = body.into_inner().new_name;
    state
        .fleet
        .rename_agent(&auth.principal, &name, &new_name)
        .await?;
    Ok(HttpResponse::Ok().json(RenameResponse {
        message: format!("Agent {name} renamed to {new_name}"),
        old_name: name.into_inner(),
        new_name,
    }))
}
