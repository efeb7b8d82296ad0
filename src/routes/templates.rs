//! Templates and agent info: what an agent was made from and what it is.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::templates::Template;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::routes::agents::ResourcesBody;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateBody {
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    /// Agent type agents made from it get by default.
    #[serde(rename = "type")]
    pub agent_type: Option<String>,
    pub runtime: Option<String>,
    pub runtime_model: Option<String>,
    pub resources: ResourcesBody,
    pub capabilities: Vec<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Workspace files it seeds (paths relative to the workspace).
    pub files: Vec<String>,
}

impl From<&Template> for TemplateBody {
    fn from(t: &Template) -> Self {
        let m = &t.meta;
        let resources = m.resources();
        Self {
            name: m.name.clone(),
            display_name: m.display_name.clone().unwrap_or_else(|| m.name.clone()),
            description: m.description.clone(),
            agent_type: m.agent_type.clone(),
            runtime: m.runtime.clone(),
            runtime_model: m.runtime_model.clone(),
            resources: ResourcesBody {
                cpu: resources.cpu,
                memory: resources.memory,
            },
            capabilities: m.capabilities.clone(),
            tags: m.tags.clone(),
            metadata: m.metadata.clone(),
            files: t.files.keys().cloned().collect(),
        }
    }
}

/// Templates agents can be created from (`"template": "<name>"` on create).
#[utoipa::path(get, path = "/api/templates", tag = "templates", security(("bearer" = [])),
    responses((status = 200, body = Vec<TemplateBody>), (status = 401, body = ErrorBody)))]
pub async fn list(_auth: Auth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let templates: Vec<TemplateBody> = state
        .fleet
        .templates()
        .iter()
        .map(TemplateBody::from)
        .collect();
    Ok(HttpResponse::Ok().json(templates))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentInfo {
    pub agent_name: String,
    /// The template it was made from, if any.
    pub template: Option<String>,
    pub display_name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    pub runtime: &'static str,
    pub runtime_model: Option<String>,
    pub resources: ResourcesBody,
    pub capabilities: Vec<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The runtime's instructions file in the workspace (`CLAUDE.md` / `GEMINI.md`).
    pub instructions_file: &'static str,
    pub workspace: &'static str,
    pub status: &'static str,
    pub created: DateTime<Utc>,
}

/// What the agent is: its template's metadata plus its runtime, model, type and resources.
#[utoipa::path(get, path = "/api/agents/{name}/info", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = AgentInfo), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn info(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (visible, template) = state.fleet.agent_info(&auth.principal, &name)?;
    let r = &visible.view.record;
    let meta = template.as_ref().map(|t| &t.meta);
    Ok(HttpResponse::Ok().json(AgentInfo {
        agent_name: r.name.clone(),
        template: r.template.clone(),
        display_name: meta
            .and_then(|m| m.display_name.clone())
            .unwrap_or_else(|| r.name.clone()),
        description: meta.and_then(|m| m.description.clone()).unwrap_or_else(|| {
            format!(
                "A {} agent running {}{}",
                r.agent_type,
                r.runtime,
                r.runtime_model
                    .as_deref()
                    .map(|m| format!(" with model {m}"))
                    .unwrap_or_default()
            )
        }),
        agent_type: r.agent_type.clone(),
        runtime: r.runtime.as_str(),
        runtime_model: r.runtime_model.clone(),
        resources: ResourcesBody {
            cpu: r.resources.cpu.clone(),
            memory: r.resources.memory.clone(),
        },
        capabilities: meta.map(|m| m.capabilities.clone()).unwrap_or_default(),
        tags: r.tags.clone(),
        metadata: meta.map(|m| m.metadata.clone()).unwrap_or_default(),
        instructions_file: r.runtime.instructions_file(),
        workspace: flotilla_actors::agent::spec::HOME,
        status: visible.view.status.as_str(),
        created: r.created,
    }))
}
