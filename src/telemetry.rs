//! Request logging. Every request gets a span (method, route pattern, path, status, request
//! id) — but never its query string: `/ws?token=<jwt>` must not put tokens in the logs.

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use crate::metrics::RoutePattern;

/// [`DefaultRootSpanBuilder`]'s fields, with `http.target` the path only.
pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        // Matched once, by the metrics middleware (which runs first); matched here only if it
        // did not run.
        let matched = request.extensions().get::<RoutePattern>().cloned();
        let route = matched
            .map_or_else(|| request.match_pattern(), |RoutePattern(p)| p)
            .unwrap_or_else(|| "default".to_string());
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %request.path(),
            http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
