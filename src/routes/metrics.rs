//! `GET /metrics`: the fleet's Prometheus metrics in the text exposition format (see
//! `flotilla_actors::metrics` for what is exported). Outside `/api` and not behind a user's JWT:
//! scrapers send the configured `FLOTILLA_METRICS_TOKEN` as a bearer token. Without a token
//! configured it answers 404 unless `FLOTILLA_METRICS_OPEN=true`. Values come from snapshots and
//! the stats sampler: a scrape never calls Docker.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::extractor::bearer;
use crate::error::{ApiError, ErrorBody};
use crate::metrics::MetricsAccess;
use crate::state::AppState;

/// The fleet's metrics, for Prometheus (`text/plain; version=0.0.4`). Needs the metrics token
/// (`FLOTILLA_METRICS_TOKEN`) as a bearer token, not a user's JWT.
#[utoipa::path(get, path = "/metrics", tag = "system", security(("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "Missing or wrong metrics token", body = ErrorBody),
        (status = 404, description = "Metrics are not enabled (no FLOTILLA_METRICS_TOKEN and FLOTILLA_METRICS_OPEN not true)", body = ErrorBody)))]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    match &state.metrics_access {
        MetricsAccess::Closed => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
            ));
        }
        MetricsAccess::Open => {}
        MetricsAccess::Token(expected) => {
            let presented =
                bearer(&req).map_err(|_| ApiError::unauthorized("missing metrics bearer token"))?;
            if !MetricsAccess::token_matches(expected, presented) {
                return Err(ApiError::unauthorized("wrong metrics token"));
            }
        }
    }
    let body = state.fleet.metrics().encode()?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(prometheus::TEXT_FORMAT)
        .body(body))
}
