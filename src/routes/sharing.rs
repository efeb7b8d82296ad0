//! Sharing agents with other users by email. Owner or admin only.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::routes::agents::ShareBody;
use crate::routes::auth::MessageResponse;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub email: String,
}

/// Share the agent with a user. The user may read it and start/stop it; a share to an email
/// with no account yet takes effect when that user is created.
#[utoipa::path(post, path = "/api/agents/{name}/share", tag = "sharing", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body = ShareRequest,
    responses((status = 200, body = ShareBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already shared with them", body = ErrorBody),
        (status = 422, description = "Bad email, or the owner themselves", body = ErrorBody)))]
pub async fn share(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: crate::routes::json::JsonObject<ShareRequest>,
) -> Result<HttpResponse, ApiError> {
    let share = state
        .fleet
        .share_agent(&auth.principal, &name, &body.email)
        .await?;
    Ok(HttpResponse::Ok().json(ShareBody::new(&share, &name)))
}

/// Stop sharing the agent with a user.
#[utoipa::path(delete, path = "/api/agents/{name}/share/{email}", tag = "sharing", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"),
        ("email" = String, Path, description = "The email it is shared with")),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such agent, or not shared with that email", body = ErrorBody)))]
pub async fn unshare(
    auth: Auth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (name, email) = path.into_inner();
    let share = state
        .fleet
        .unshare_agent(&auth.principal, &name, &email)
        .await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: format!("Agent {name} is no longer shared with {}", share.email),
    }))
}

/// Who the agent is shared with, newest first.
#[utoipa::path(get, path = "/api/agents/{name}/shares", tag = "sharing", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = Vec<ShareBody>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let shares: Vec<ShareBody> = state
        .fleet
        .list_shares(&auth.principal, &name)?
        .iter()
        .map(|s| ShareBody::new(s, &name))
        .collect();
    Ok(HttpResponse::Ok().json(shares))
}
