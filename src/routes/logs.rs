//! Agent logs, as a snapshot or followed live.

use actix_web::{HttpResponse, web};
use flotilla_actors::logs::MAX_TAIL;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines from the end (default 100, at most 10000; larger values are capped).
    #[param(minimum = 0)]
    pub tail: Option<i64>,
    /// Stream the log live (chunked `text/plain`) until the client disconnects.
    pub follow: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogsBody {
    /// stdout and stderr, interleaved in the order they were written.
    pub logs: String,
}

/// The agent container's output.
#[utoipa::path(get, path = "/api/agents/{name}/logs", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name"), LogsQuery),
    responses(
        (status = 200, description = "The log (JSON), or the live log (text/plain, chunked) with follow=true",
            content((LogsBody = "application/json"), (String = "text/plain"))),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The agent has no container", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn logs(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let tail = match query.tail {
        None => 100,
        Some(n) if n < 0 => return Err(ApiError::invalid("tail", "must not be negative")),
        Some(n) => u64::try_from(n).unwrap_or(MAX_TAIL).min(MAX_TAIL),
    };
    if query.follow.unwrap_or(false) {
        let stream = state.fleet.follow_logs(&auth.principal, &name, tail)?;
        // Dropped with the response when the client goes away, which closes the Docker stream.
        let body = stream.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
        return Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Cache-Control", "no-cache"))
            .streaming(body));
    }
    let logs = state.fleet.logs(&auth.principal, &name, tail).await?;
    Ok(HttpResponse::Ok().json(LogsBody { logs }))
}
