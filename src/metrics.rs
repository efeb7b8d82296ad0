//! The server's side of the Prometheus metrics (the registry itself is the fleet's, see
//! `flotilla_actors::metrics`): the middleware that times every HTTP request, and who may read
//! `/metrics` ([`MetricsAccess`], served by `routes::metrics`).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::state::AppState;

/// Who may read `/metrics`.
#[derive(Clone)]
pub enum MetricsAccess {
    /// Whoever sends `Authorization: Bearer <token>` (`FLOTILLA_METRICS_TOKEN`). Only the
    /// token's SHA-256 is kept, and compared in constant time.
    Token([u8; 32]),
    /// Anyone: no token is set and `FLOTILLA_METRICS_OPEN=true`.
    Open,
    /// No one: `/metrics` answers 404, as an unknown route does.
    Closed,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::Token(_) => "Token(..)",
            MetricsAccess::Open => "Open",
            MetricsAccess::Closed => "Closed",
        })
    }
}

impl MetricsAccess {
    /// A token wins over `FLOTILLA_METRICS_OPEN`; neither means closed.
    pub fn from_config(config: &Config) -> Self {
        match (&config.metrics_token, config.metrics_open) {
            (Some(token), _) => MetricsAccess::Token(Sha256::digest(token.as_bytes()).into()),
            (None, true) => MetricsAccess::Open,
            (None, false) => MetricsAccess::Closed,
        }
    }

    /// Whether `presented` (the bearer token a scrape sent) matches, in constant time for
    /// tokens of any length.
    pub fn token_matches(expected: &[u8; 32], presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        expected.ct_eq(&presented).into()
    }
}

/// The route pattern of a request (`/api/agents/{name}`), matched once by [`record_request`]
/// and kept in the request's extensions; `None` when no route matched.
#[derive(Debug, Clone)]
pub struct RoutePattern(pub Option<String>);

/// Middleware: time every request and record it by method, route *pattern* (never the
/// concrete path, so agent names are not label values) and status class.
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    // Matching the path against the route table is the costliest part of this middleware; the
    // request span (`telemetry`) takes the pattern from here instead of matching again.
    let pattern = req.match_pattern();
    let route = pattern.clone().unwrap_or_else(|| "unmatched".to_string());
    req.extensions_mut().insert(RoutePattern(pattern));
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.fleet.metrics().clone());
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.observe_http(&method, &route, status.as_u16(), started.elapsed());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_wins_and_is_compared_by_digest() {
        let mut config = Config::default();
        assert!(matches!(
            MetricsAccess::from_config(&config),
            MetricsAccess::Closed
        ));
        config.metrics_open = true;
        assert!(matches!(
            MetricsAccess::from_config(&config),
            MetricsAccess::Open
        ));
        config.metrics_token = Some("s3cret".into());
        let MetricsAccess::Token(expected) = MetricsAccess::from_config(&config) else {
            panic!("a token is set");
        };
        assert!(MetricsAccess::token_matches(&expected, "s3cret"));
        assert!(!MetricsAccess::token_matches(&expected, "s3cret "));
        assert!(!MetricsAccess::token_matches(&expected, ""));
        assert_eq!(format!("{:?}", MetricsAccess::Token(expected)), "Token(..)");
    }
}
