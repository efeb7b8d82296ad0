//! The route table: every endpoint, in one place, grouped by resource. Handlers parse and shape
//! HTTP and call the `Fleet` handle; they never touch Docker or the database. A known path
//! called with another method answers 405.

pub mod admin;
pub mod agents;
pub mod auth;
pub mod avatar;
pub mod context;
pub mod credentials;
pub mod files;
pub mod folders;
pub mod json;
pub mod logs;
pub mod metrics;
pub mod settings;
pub mod sharing;
pub mod ssh;
pub mod stats;
pub mod system;
pub mod templates;
pub mod users;
pub mod ws;

use actix_web::web::{self, delete, get, head, post, put, resource};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/health")
            .route(get().to(system::health))
            .route(head().to(system::health)),
    )
    .service(resource("/ws").route(get().to(ws::ws)))
    .service(resource("/metrics").route(get().to(metrics::metrics)))
    .service(resource("/api/token").route(post().to(auth::login)))
    .service(resource("/api/auth/logout").route(post().to(auth::logout)))
    .service(resource("/api/users/me").route(get().to(users::me)))
    .service(resource("/api/users/me/password").route(put().to(users::change_password)))
    .service(resource("/api/users/{email}").route(delete().to(users::delete)))
    .service(
        resource("/api/users")
            .route(get().to(users::list))
            .route(post().to(users::create)),
    )
    .service(resource("/api/admin/orphans").route(get().to(admin::orphans)))
    .service(
        resource("/api/agents")
            .route(get().to(agents::list))
            .route(post().to(agents::create)),
    )
    // Before `/api/agents/{name}`: actix matches in registration order.
    .service(resource("/api/agents/context-stats").route(get().to(context::context_stats)))
    .service(resource("/api/agents/autonomy-status").route(get().to(context::autonomy_status)))
    .service(
        resource("/api/agents/{name}")
            .route(get().to(agents::get))
            .route(delete().to(agents::delete)),
    )
    .service(resource("/api/agents/{name}/start").route(post().to(agents::start)))
    .service(resource("/api/agents/{name}/files").route(get().to(files::tree)))
    .service(resource("/api/agents/{name}/files/download").route(get().to(files::download)))
    .service(resource("/api/agents/{name}/stop").route(post().to(agents::stop)))
    .service(resource("/api/agents/{name}/stats").route(get().to(stats::get)))
    .service(resource("/api/agents/{name}/rename").route(put().to(agents::rename)))
    .service(resource("/api/agents/{name}/info").route(get().to(templates::info)))
    .service(resource("/api/agents/{name}/share").route(post().to(sharing::share)))
    .service(resource("/api/agents/{name}/share/{email}").route(delete().to(sharing::unshare)))
    .service(resource("/api/agents/{name}/shares").route(get().to(sharing::list)))
    .service(
        resource("/api/agents/{name}/folders")
            .route(get().to(folders::get))
            .route(put().to(folders::put)),
    )
    .service(resource("/api/agents/{name}/folders/available").route(get().to(folders::available)))
    .service(resource("/api/agents/{name}/folders/consumers").route(get().to(folders::consumers)))
    .service(
        resource("/api/agents/{name}/autonomy")
            .route(get().to(settings::get_autonomy))
            .route(put().to(settings::put_autonomy)),
    )
    .service(
        resource("/api/agents/{name}/read-only")
            .route(get().to(settings::get_read_only))
            .route(put().to(settings::put_read_only)),
    )
    .service(
        resource("/api/agents/{name}/timeout")
            .route(get().to(settings::get_timeout))
            .route(put().to(settings::put_timeout)),
    )
    .service(
        resource("/api/agents/{name}/avatar")
            .route(get().to(avatar::get))
            .route(put().to(avatar::put)),
    )
    .service(resource("/api/agents/{name}/logs").route(get().to(logs::logs)))
    .service(
        resource("/api/agents/{name}/ssh-access")
            .route(post().to(ssh::grant))
            .route(delete().to(ssh::revoke)),
    )
    .service(credentials_resource("inject").route(post().to(credentials::inject)))
    .service(credentials_resource("status").route(get().to(credentials::status)))
    .service(credentials_resource("export").route(post().to(credentials::export)))
    .service(credentials_resource("import").route(post().to(credentials::import)))
    .service(resource("/api/templates").route(get().to(templates::list)));
}

/// `/api/agents/{name}/credentials/{action}`, accepting bodies up to
/// [`credentials::BODY_LIMIT`] (a full vault, or its bundle, is larger than other bodies).
fn credentials_resource(action: &str) -> actix_web::Resource {
    resource(format!("/api/agents/{{name}}/credentials/{action}"))
        .app_data(web::PayloadConfig::new(credentials::BODY_LIMIT))
}
