//! Shared folders: agents publishing `~/shared-out` and mounting each other's, read-only, at
//! `~/shared-in/{producer}`.

use actix_web::{HttpResponse, web};
use flotilla_actors::agent::spec::SHARED_OUT;
use flotilla_actors::folders::{ConsumedFolder, FolderStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct FolderBody {
    pub source_agent: String,
    pub mount_path: String,
    /// The consumer's current container mounts it (else: from its next start).
    pub currently_mounted: bool,
}

impl From<&ConsumedFolder> for FolderBody {
    fn from(f: &ConsumedFolder) -> Self {
        Self {
            source_agent: f.producer.name.clone(),
            mount_path: f.producer.mount_path(),
            currently_mounted: f.currently_mounted,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FoldersBody {
    pub agent_name: String,
    pub expose_enabled: bool,
    pub consume_enabled: bool,
    pub exposed_path: &'static str,
    pub consumed_folders: Vec<FolderBody>,
    /// The container does not match this configuration yet: restart the agent, or PUT with
    /// `?apply=true`.
    pub restart_required: bool,
    /// Set by PUT: the running container was recreated to apply the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_recreated: Option<bool>,
}

fn folders_body(status: &FolderStatus, recreated: Option<bool>) -> FoldersBody {
    let r = &status.agent.record;
    FoldersBody {
        agent_name: r.name.clone(),
        expose_enabled: r.expose_enabled,
        consume_enabled: r.consume_enabled,
        exposed_path: SHARED_OUT,
        consumed_folders: status.consumed.iter().map(FolderBody::from).collect(),
        restart_required: status.restart_required,
        container_recreated: recreated,
    }
}

/// The agent's shared-folder configuration.
#[utoipa::path(get, path = "/api/agents/{name}/folders", tag = "folders", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = FoldersBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let status = state.fleet.folders(&auth.principal, &name)?;
    Ok(HttpResponse::Ok().json(folders_body(&status, None)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FoldersRequest {
    pub expose_enabled: Option<bool>,
    pub consume_enabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Recreate a running agent's container at once instead of at its next start.
    pub apply: Option<bool>,
}

/// Change what the agent exposes and consumes (partial update). Mounts change when the
/// container is recreated: at the next start, or now with `?apply=true`.
#[utoipa::path(put, path = "/api/agents/{name}/folders", tag = "folders", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"), ApplyQuery),
    request_body = FoldersRequest,
    responses((status = 200, body = FoldersBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<ApplyQuery>,
    body: crate::routes::json::JsonObject<FoldersRequest>,
) -> Result<HttpResponse, ApiError> {
    let (status, outcome) = state
        .fleet
        .set_folders(
            &auth.principal,
            &name,
            body.expose_enabled,
            body.consume_enabled,
            query.apply.unwrap_or(false),
        )
        .await?;
    Ok(HttpResponse::Ok().json(folders_body(&status, Some(outcome.container_recreated))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableBody {
    pub agent_name: String,
    pub available_folders: Vec<FolderBody>,
    pub count: usize,
}

/// The shared folders this agent may mount: those of exposing agents its owner may access.
#[utoipa::path(get, path = "/api/agents/{name}/folders/available", tag = "folders", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = AvailableBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn available(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (view, folders) = state.fleet.available_folders(&auth.principal, &name)?;
    let available_folders: Vec<FolderBody> = folders.iter().map(FolderBody::from).collect();
    Ok(HttpResponse::Ok().json(AvailableBody {
        agent_name: view.record.name.clone(),
        count: available_folders.len(),
        available_folders,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerBody {
    pub agent_name: String,
    pub mount_path: String,
    pub currently_mounted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumersBody {
    pub source_agent: String,
    pub consumers: Vec<ConsumerBody>,
    pub count: usize,
}

/// The agents (that you can see) consuming this agent's shared folder.
#[utoipa::path(get, path = "/api/agents/{name}/folders/consumers", tag = "folders", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = ConsumersBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn consumers(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (producer, consumers) = state.fleet.folder_consumers(&auth.principal, &name)?;
    let source = producer.record.name.clone();
    let consumers: Vec<ConsumerBody> = consumers
        .iter()
        .map(|(view, mounted)| ConsumerBody {
            agent_name: view.record.name.clone(),
            mount_path: format!("{}/{source}", flotilla_actors::agent::spec::SHARED_IN),
            currently_mounted: *mounted,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ConsumersBody {
        source_agent: source,
        count: consumers.len(),
        consumers,
    }))
}
