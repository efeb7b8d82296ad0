//! Start-up: everything `flotilla serve` does before serving, in one place that `main` and the
//! tests both use. [`Application::build`] connects to Docker, makes sure the agent image exists,
//! starts the fleet (store, actors, recovery), ensures the admin account and binds the listener
//! (port 0 picks a free port); [`Application::run_until_stopped`] serves until SIGINT/SIGTERM,
//! then drains in-flight requests before returning.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use flotilla_actors::runtime::ContainerRuntime;
use flotilla_actors::runtime::docker::DockerRuntime;
use flotilla_actors::runtime::image;
use flotilla_actors::{Fleet, Role, User};
use tracing::{info, warn};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::limiter::{ApiLimiter, LoginLimiter};
use crate::auth::password;
use crate::auth::token::{TokenService, load_or_create_secret};
use crate::config::Config;
use crate::error;
use crate::list_cache::ListCache;
use crate::metrics::MetricsAccess;
use crate::openapi::ApiDoc;
use crate::routes;
use crate::state::AppState;

/// How long a graceful shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(30);

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Prepare everything and bind the listener. Must run inside an actix `System`
    /// (`#[actix_web::main]`, or `actix_web::rt::System::new().block_on(..)`).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let secret = load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let tokens = TokenService::new(&secret, config.token_ttl)?;

        let fleet_config = config.fleet();
        let runtime = DockerRuntime::connect(fleet_config.docker_timeout)
            .await
            .context("connecting to the Docker daemon")?
            .with_mutation_limit(config.docker_concurrency);
        ensure_image(&runtime, &config).await?;
        let fleet = Fleet::start(fleet_config, Arc::new(runtime))
            .await
            .context("starting the fleet")?;
        ensure_admin(&fleet, config.admin_password.as_deref()).await?;

        let metrics = fleet.metrics().clone();
        let state = web::Data::new(AppState {
            fleet,
            tokens,
            login_limiter: LoginLimiter::new(config.login_burst, config.login_per_minute)
                .with_metrics(metrics.clone()),
            api_limiter: ApiLimiter::new(config.api_rate_per_second, config.api_burst)
                .with_metrics(metrics),
            metrics_access: MetricsAccess::from_config(&config),
            decoy_hash: password::decoy_hash().await?,
            lists: ListCache::default(),
        });
        let listener =
            TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
        let port = listener.local_addr()?.port();
        let max_body = config.max_body_bytes;
        let app_state = state.clone();
        let openapi = ApiDoc::openapi();
        let server = HttpServer::new(move || {
            let (json, query, path) = error::extractor_config(max_body);
            App::new()
                .wrap(ErrorHandlers::new().default_handler(error::json_errors))
                .wrap(tracing_actix_web::TracingLogger::<
                    crate::telemetry::RedactedRootSpan,
                >::new())
                .wrap(from_fn(crate::metrics::record_request))
                .app_data(app_state.clone())
                .app_data(json)
                .app_data(query)
                .app_data(path)
                .app_data(web::PayloadConfig::new(max_body))
                .configure(routes::configure)
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
                .service(web::redirect("/docs", "/docs/"))
                .default_service(web::to(error::not_found))
        })
        .workers(config.workers)
        .shutdown_timeout(DRAIN.as_secs())
        .listen(listener)?
        .run();
        info!(address = %config.bind.ip(), port, instance = %config.instance, "flotilla listening");
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server from elsewhere (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until the server is stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]), with
    /// periodic housekeeping (login and API rate-limiter pruning) alongside. Shutdown order: stop accepting,
    /// drain in-flight requests (bounded), then stop the agent actors.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let housekeeping = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                state.login_limiter.housekeeping();
                state.api_limiter.housekeeping();
            }
        });
        let result = self.server.await;
        housekeeping.abort();
        self.state.fleet.shutdown().await;
        info!("flotilla stopped");
        result
    }
}

/// Build the default agent image if it is configured and missing or built by an older version
/// of flotilla. A missing custom image is reported (creates will fail until it exists) but does
/// not stop the server.
async fn ensure_image(runtime: &DockerRuntime, config: &Config) -> anyhow::Result<()> {
    if config.agent_image == image::DEFAULT_IMAGE {
        if !image::is_current(runtime, &config.agent_image).await? {
            info!(image = %config.agent_image, busybox = %config.busybox.display(), "building the default agent image");
            image::build(runtime, &config.agent_image, &config.busybox)
                .await
                .context("building the default agent image")?;
        }
    } else if !runtime.image_exists(&config.agent_image).await? {
        warn!(image = %config.agent_image, "agent image not found; creating agents will fail until it exists");
    }
    Ok(())
}

/// Create user `admin` with `password`, or update its password if it changed (which revokes the
/// admin's older tokens). Without a password, an existing admin is left as it is.
async fn ensure_admin(fleet: &Fleet, password: Option<&str>) -> anyhow::Result<()> {
    let Some(password) = password else {
        if fleet.accounts().user("admin").is_none() {
            warn!("no admin user exists; set FLOTILLA_ADMIN_PASSWORD to create one");
        }
        return Ok(());
    };
    let existing = fleet.accounts().user("admin");
    if let Some(admin) = &existing
        && password::verify(password.to_string(), admin.password_hash.clone()).await?
    {
        return Ok(());
    }
    let user = User {
        username: "admin".into(),
        role: Role::Admin,
        password_hash: password::hash(password.to_string()).await?,
        token_version: existing.as_ref().map_or(0, |a| a.token_version + 1),
        created_at: existing.map_or_else(chrono::Utc::now, |a| a.created_at),
    };
    fleet.save_user(user).await?;
    info!("admin account ready");
    Ok(())
}
