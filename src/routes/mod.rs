//! The route table: every endpoint, in one place, grouped by resource. Handlers parse and shape
//! HTTP and call the `Fleet` handle; they never touch Docker or the database. A known path
//! called with another method answers 405.

pub mod admin;
pub mod agents;
pub mod auth;
pub mod avatar;
pub mod files;
pub mod logs;
pub mod stats;
pub mod system;
pub mod templates;
pub mod users;

use actix_web::web::{self, delete, get, head, post, put, resource};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/health")
            .route(get().to(system::health))
            .route(head().to(system::health)),
    )
    .service(resource("/api/token").route(post().to(auth::login)))
    .service(resource("/api/auth/logout").route(post().to(auth::logout)))
    .service(resource("/api/users/me").route(get().to(users::me)))
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
    .service(
        resource("/api/agents/{name}/avatar")
            .route(get().to(avatar::get))
            .route(put().to(avatar::put)),
    )
    .service(resource("/api/agents/{name}/logs").route(get().to(logs::logs)))
    .service(resource("/api/templates").route(get().to(templates::list)));
}
