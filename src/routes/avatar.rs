//! Agent avatars: a generated default until the owner uploads an image.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The URL clients cache an agent's avatar under: it changes when the image does.
pub fn avatar_url(name: &str, version: i64) -> String {
    format!("/api/agents/{name}/avatar?v={version}")
}

/// The agent's avatar image: the uploaded PNG/JPEG/WebP, or a generated SVG identicon.
#[utoipa::path(get, path = "/api/agents/{name}/avatar", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"),
        ("v" = Option<i64>, Query, description = "Cache-busting version from avatar_url")),
    responses(
        (status = 200, description = "The image", content_type = "image/*"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    auth: Auth,
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let avatar = state.fleet.avatar(&auth.principal, &name).await?;
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == avatar.etag));
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, avatar.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        ));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.content_type(avatar.content_type).body(avatar.data))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvatarUpdated {
    pub avatar_url: String,
    pub version: i64,
}

/// Upload a new avatar (owner or admin): the raw image bytes, PNG, JPEG or WebP (judged by
/// content, not by the declared type), at most 512 KiB.
#[utoipa::path(put, path = "/api/agents/{name}/avatar", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body(content = Vec<u8>, content_type = "image/png",
        description = "The image bytes (image/png, image/jpeg or image/webp)"),
    responses((status = 200, body = AvatarUpdated), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let version = state.fleet.set_avatar(&auth.principal, &name, body).await?;
    Ok(HttpResponse::Ok().json(AvatarUpdated {
        avatar_url: avatar_url(&name, version),
        version,
    }))
}
