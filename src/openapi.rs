//! The OpenAPI document, served at `/openapi.json`, with Swagger UI at `/docs` (vendored into
//! the binary: no CDN, no network). Every route in `routes::configure` is listed here.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flotilla",
        description = "A fleet of AI agents, each in its own Docker container, behind a JWT-protected REST API."
    ),
    paths(
        routes::system::health,
        routes::metrics::metrics,
        routes::ws::ws,
        routes::auth::login,
        routes::auth::logout,
        routes::users::me,
        routes::users::list,
        routes::users::create,
        routes::admin::orphans,
        routes::agents::list,
        routes::agents::create,
        routes::context::context_stats,
        routes::context::autonomy_status,
        routes::agents::get,
        routes::agents::delete,
        routes::agents::start,
        routes::agents::stop,
        routes::agents::rename,
        routes::files::tree,
        routes::files::download,
        routes::stats::get,
        routes::templates::info,
        routes::sharing::share,
        routes::sharing::unshare,
        routes::sharing::list,
        routes::folders::get,
        routes::folders::put,
        routes::folders::available,
        routes::folders::consumers,
        routes::settings::get_autonomy,
        routes::settings::put_autonomy,
        routes::settings::get_read_only,
        routes::settings::put_read_only,
        routes::settings::get_timeout,
        routes::settings::put_timeout,
        routes::avatar::get,
        routes::avatar::put,
        routes::logs::logs,
        routes::ssh::grant,
        routes::ssh::revoke,
        routes::credentials::inject,
        routes::credentials::status,
        routes::credentials::export,
        routes::credentials::import,
        routes::templates::list,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login and logout"),
        (name = "users", description = "User accounts"),
        (name = "agents", description = "Agent CRUD and lifecycle"),
        (name = "templates", description = "Templates agents are created from"),
        (name = "sharing", description = "Sharing agents with other users"),
        (name = "folders", description = "Shared folders between agents"),
        (name = "settings", description = "Autonomy, read-only mode and execution timeout"),
        (name = "files", description = "Workspace files: tree and downloads"),
        (name = "credentials", description = "Per-agent credential vaults: inject, status, export and import"),
        (name = "admin", description = "Fleet administration"),
        (name = "system", description = "Service health"),
        (name = "events", description = "Agent events over a WebSocket"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` JWT scheme the operations refer to, and `/metrics`' `metrics_token`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        // `/metrics` takes its own token (FLOTILLA_METRICS_TOKEN), not a user's JWT.
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
