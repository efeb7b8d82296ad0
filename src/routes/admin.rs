//! Fleet administration.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrphanBody {
    pub container_id: String,
    pub name: String,
    /// The agent id label the container carries, if any.
    pub agent_id: Option<String>,
}

/// Containers labelled with this instance that belong to no agent, found at start-up (admin
/// only). flotilla never removes them on its own.
#[utoipa::path(get, path = "/api/admin/orphans", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<OrphanBody>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn orphans(auth: Auth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let orphans: Vec<OrphanBody> = state
        .fleet
        .orphans(&auth.principal)?
        .into_iter()
        .map(|o| OrphanBody {
            container_id: o.container_id,
            name: o.name,
            agent_id: o.agent_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(orphans))
}
