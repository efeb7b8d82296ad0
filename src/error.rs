//! The one HTTP error type. Every failure a client can see becomes an [`ApiError`]: a status,
//! a stable machine `code` and a human `detail` (the field clients of the reference read).
//! The status mapping from runtime errors lives in one `match`, in [`From<FleetError>`].

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error as actix_error, web};
use flotilla_actors::FleetError;
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for humans.
    pub detail: String,
    /// What went wrong, for programs (stable).
    pub code: &'static str,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            format!("{field}: {reason}"),
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed attempts, try again later",
            )
        }
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl From<FleetError> for ApiError {
    fn from(e: FleetError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            FleetError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            FleetError::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            FleetError::Invalid { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_input"),
            FleetError::TooLarge(_) => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            FleetError::Conflict(_) => (S::CONFLICT, "conflict"),
            FleetError::IllegalState(_) => (S::CONFLICT, "illegal_state"),
            FleetError::BadCredentials => (S::UNAUTHORIZED, "bad_credentials"),
            FleetError::PortsExhausted => (S::SERVICE_UNAVAILABLE, "ports_exhausted"),
            FleetError::NotReady { .. } => (S::SERVICE_UNAVAILABLE, "not_ready"),
            FleetError::RuntimeUnavailable(_) => (S::SERVICE_UNAVAILABLE, "docker_unavailable"),
            FleetError::RuntimeTimeout(_) => (S::GATEWAY_TIMEOUT, "docker_timeout"),
            FleetError::Runtime(_) => (S::INTERNAL_SERVER_ERROR, "docker_error"),
            FleetError::ActorTimeout(_) => (S::GATEWAY_TIMEOUT, "busy"),
            FleetError::ActorGone => (S::SERVICE_UNAVAILABLE, "restarting"),
            FleetError::Store(_) => (S::INTERNAL_SERVER_ERROR, "store_error"),
            FleetError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        // Server-side failures are logged in full but described generically: their messages
        // can carry host paths and other internals.
        let detail = if status == S::INTERNAL_SERVER_ERROR {
            tracing::error!(code, error = %e, "request failed");
            match e {
                FleetError::Runtime(_) => "docker could not complete the operation",
                FleetError::Store(_) => "the store could not complete the operation",
                _ => "internal error",
            }
            .to_string()
        } else {
            e.to_string()
        };
        let mut api = ApiError::new(status, code, detail);
        if status == S::SERVICE_UNAVAILABLE {
            api.retry_after = Some(5);
        }
        if let FleetError::NotReady {
            retry_after_secs, ..
        } = &e
        {
            api.retry_after = Some(*retry_after_secs);
        }
        api
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = self.code, detail = %self.detail, "request failed");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.insert_header((header::RETRY_AFTER, value));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody {
            detail: self.detail.clone(),
            code: self.code,
        })
    }
}

/// JSON bodies that cannot be read: 413 when too large, 400 when not JSON at all, 422 when JSON
/// of the wrong shape (naming the field, as serde reports it).
pub fn json_error(err: actix_error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_error::JsonPayloadError as J;
    let api = match &err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        ),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        J::Deserialize(e) if e.is_data() => ApiError::invalid("body", e),
        J::Deserialize(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
        other => ApiError::bad_request(other.to_string()),
    };
    api.into()
}

/// Query strings that do not parse: 422.
pub fn query_error(err: actix_error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("query", err).into()
}

/// Path parameters that do not parse: 404 (the resource so named cannot exist).
pub fn path_error(err: actix_error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string()).into()
}

/// Extractor configuration that routes every parsing failure through [`ApiError`].
pub fn extractor_config(
    max_body_bytes: usize,
) -> (web::JsonConfig, web::QueryConfig, web::PathConfig) {
    (
        web::JsonConfig::default()
            .limit(max_body_bytes)
            .error_handler(json_error),
        web::QueryConfig::default().error_handler(query_error),
        web::PathConfig::default().error_handler(path_error),
    )
}

/// The body of an unknown route: JSON like every other error.
pub async fn not_found() -> HttpResponse {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").error_response()
}

/// Error-handler middleware: an error response that is not JSON yet — produced by actix itself
/// (payload limits, a method a resource does not serve) or by a library service (Swagger UI
/// assets) — is rewritten into the same `{detail, code}` body as every other error.
pub fn json_errors<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (code, default_detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "request headers are too large")
        }
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "bad request"),
    };
    let detail = res
        .response()
        .error()
        .map(|e| e.to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| default_detail.to_string());
    let (req, _) = res.into_parts();
    let response = ApiError::new(status, code, detail).error_response();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}
