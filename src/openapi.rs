//! The OpenAPI document, served at `/openapi.json`, with Swagger UI at `/docs` (vendored into
//! the binary: no CDN, no network). Every route in `routes::configure` is listed here.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
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
        routes::users::change_password,
        routes::users::delete,
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
    modifiers(&BearerAuth, &CommonResponses),
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

/// Answers any operation can give for reasons of its own kind rather than its own logic,
/// documented on every operation they apply to (so that clients, and schema checkers such as
/// schemathesis, know them): 429 on every bearer-protected operation (the per-user rate limit),
/// and 400 (malformed JSON), 413 (body too large) and 415 (wrong content type) on every
/// operation that takes a body. It also makes every `operationId` unique (utoipa names an
/// operation after its handler function, and several handlers share a name: `list`, `create`,
/// `get`, ...): a shared name is prefixed with the operation's tag, or failing that, named
/// after its method and path.
struct CommonResponses;

impl CommonResponses {
    fn add(operation: &mut Operation, status: &str, description: &str) {
        let responses = &mut operation.responses.responses;
        if responses.contains_key(status) {
            return;
        }
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build();
        responses.insert(status.to_string(), RefOr::T(response));
    }
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for item in openapi.paths.paths.values() {
            for operation in [&item.get, &item.put, &item.post, &item.delete]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &operation.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        let mut taken: std::collections::HashSet<String> = seen
            .iter()
            .filter(|(_, n)| **n == 1)
            .map(|(id, _)| id.clone())
            .collect();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", item.get.as_mut()),
                ("put", item.put.as_mut()),
                ("post", item.post.as_mut()),
                ("delete", item.delete.as_mut()),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let Some(id) = operation.operation_id.clone() else {
                    continue;
                };
                if seen.get(&id).copied().unwrap_or(0) <= 1 {
                    continue;
                }
                let tag = operation
                    .tags
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .unwrap_or_default();
                let mut unique = format!("{tag}_{id}");
                if !taken.insert(unique.clone()) {
                    unique = format!("{method}{}", path.replace(['/', '{', '}', '-'], "_"));
                    taken.insert(unique.clone());
                }
                operation.operation_id = Some(unique);
            }
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let bearer = operation.security.as_ref().is_some_and(|requirements| {
                    serde_json::to_value(requirements)
                        .is_ok_and(|v| v.to_string().contains("\"bearer\""))
                });
                if bearer {
                    Self::add(
                        operation,
                        "429",
                        "Too many requests from this user (see `Retry-After`)",
                    );
                }
                if operation.request_body.is_some() {
                    Self::add(operation, "400", "The body is not well-formed");
                    Self::add(operation, "413", "The body is too large");
                    Self::add(operation, "415", "The body has the wrong content type");
                }
            }
        }
    }
}
