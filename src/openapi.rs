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
        routes::auth::login,
        routes::auth::logout,
        routes::users::me,
        routes::users::list,
        routes::users::create,
        routes::admin::orphans,
        routes::agents::list,
        routes::agents::create,
        routes::agents::get,
        routes::agents::delete,
        routes::agents::start,
        routes::agents::stop,
        routes::agents::rename,
        routes::files::tree,
        routes::files::download,
        routes::stats::get,
        routes::templates::info,
        routes::avatar::get,
        routes::avatar::put,
        routes::logs::logs,
        routes::templates::list,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Login and logout"),
        (name = "users", description = "User accounts"),
        (name = "agents", description = "Agent CRUD and lifecycle"),
        (name = "templates", description = "Templates agents are created from"),
        (name = "files", description = "Workspace files: tree and downloads"),
        (name = "admin", description = "Fleet administration"),
        (name = "system", description = "Service health"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` JWT scheme the operations refer to.
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
    }
}
