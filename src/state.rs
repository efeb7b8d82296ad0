//! The application state every handler receives: the `Fleet` handle and the auth services.
//! One instance, shared by all HTTP workers through `web::Data`.

use flotilla_actors::Fleet;

use crate::auth::limiter::{ApiLimiter, LoginLimiter};
use crate::auth::token::TokenService;
use crate::list_cache::ListCache;
use crate::metrics::MetricsAccess;

pub struct AppState {
    pub fleet: Fleet,
    pub tokens: TokenService,
    pub login_limiter: LoginLimiter,
    /// Per-user request rate, checked by the `Auth` extractor.
    pub api_limiter: ApiLimiter,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// Hash checked against when a login names an unknown user, so timing does not reveal
    /// which usernames exist.
    pub decoy_hash: String,
    /// Serialised `GET /api/agents` bodies, per caller, while the fleet is unchanged.
    pub lists: ListCache,
}
