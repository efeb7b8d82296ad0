//! Test support: a real flotilla server on a random port, talking to the real Docker daemon and a
//! real embedded store, with one method per endpoint.
//!
//! Each [`TestApp`] gets its own `FLOTILLA_INSTANCE` (a fresh label), so tests running in
//! parallel on one daemon never see each other's objects, and dropping it — also when the test
//! panics — removes every container and volume carrying that label.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flotilla::config::Config;
use flotilla::startup::Application;
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-0123456789";
/// The bearer token test servers require on `/metrics`.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// A name unique across concurrent tests and runs (agent names are global on the daemon,
/// because containers are named `agent-{name}`).
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..10])
}

/// Settings for a test server: in-memory store, its own instance label, the test secret.
pub fn test_config(instance: &str, data_dir: &Path) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().expect("address"),
        data_dir: data_dir.to_path_buf(),
        db_url: Some("mem://".into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        jwt_secret: Some(JWT_SECRET.into()),
        instance: instance.into(),
        login_burst: 1000,
        login_per_minute: 1000,
        metrics_token: Some(METRICS_TOKEN.into()),
        // Tests that poll in tight loops must not meet the per-user limit; rate_limits.rs sets
        // its own.
        api_rate_per_second: 100_000,
        api_burst: 100_000,
        workers: 2,
        ..Config::default()
    }
}

/// Removes every container and volume labelled with an instance, when dropped.
pub struct DockerCleanup {
    pub instance: String,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        remove_instance_objects(&self.instance);
    }
}

fn docker_ids(args: &[&str]) -> Vec<String> {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub fn remove_instance_objects(instance: &str) {
    let filter = format!("label=flotilla.instance={instance}");
    let containers = docker_ids(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v"])
            .args(&containers)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let volumes = docker_ids(&["volume", "ls", "-q", "--filter", &filter]);
    if !volumes.is_empty() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&volumes)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Containers (any state) and volumes carrying the instance label.
pub fn instance_objects(instance: &str) -> (Vec<String>, Vec<String>) {
    let filter = format!("label=flotilla.instance={instance}");
    (
        docker_ids(&["ps", "-aq", "--filter", &filter]),
        docker_ids(&["volume", "ls", "-q", "--filter", &filter]),
    )
}

/// `docker inspect` of one container, as JSON.
pub fn inspect(container: &str) -> Value {
    let out = Command::new("docker")
        .args(["inspect", container])
        .output()
        .expect("docker inspect");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list.get(0).cloned().unwrap_or(Value::Null)
}

/// Docker's view of a container's state (`running`, `exited`, ...), or `None` if it is gone.
pub fn docker_state(container: &str) -> Option<String> {
    inspect(container)["State"]["Status"]
        .as_str()
        .map(str::to_string)
}

/// A client for one running server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: Client,
}

impl Api {
    pub fn new(port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/token"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    /// Log in and return the access token, failing the test on anything but 200.
    pub async fn token(&self, username: &str, password: &str) -> String {
        let response = self.login(username, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, token: &str, path: &str, body: Option<Value>) -> Response {
        let mut request = self.client.post(self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, token: &str, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    // ---- one method per endpoint ----

    pub async fn list_agents(&self, token: &str) -> Response {
        self.get(token, "/api/agents").await
    }

    pub async fn create_agent(&self, token: &str, body: Value) -> Response {
        self.post(token, "/api/agents", Some(body)).await
    }

    /// Create a small agent (0.25 CPU, 128 MiB) and return its JSON, failing on anything but 200.
    pub async fn create_small(&self, token: &str, name: &str) -> Value {
        let response = self
            .create_agent(
                token,
                json!({"name": name, "resources": {"cpu": "0.25", "memory": "128m"}}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::OK, "create {name}: {body}");
        body
    }

    pub async fn get_agent(&self, token: &str, name: &str) -> Response {
        self.get(token, &format!("/api/agents/{name}")).await
    }

    pub async fn delete_agent(&self, token: &str, name: &str) -> Response {
        self.delete(token, &format!("/api/agents/{name}")).await
    }

    pub async fn start_agent(&self, token: &str, name: &str) -> Response {
        self.post(token, &format!("/api/agents/{name}/start"), None)
            .await
    }

    pub async fn stop_agent(&self, token: &str, name: &str) -> Response {
        self.post(token, &format!("/api/agents/{name}/stop"), None)
            .await
    }

    pub async fn rename_agent(&self, token: &str, name: &str, new_name: &str) -> Response {
        self.put(
            token,
            &format!("/api/agents/{name}/rename"),
            json!({ "new_name": new_name }),
        )
        .await
    }

    pub async fn create_user(&self, token: &str, email: &str, password: &str) -> Response {
        self.post(
            token,
            "/api/users",
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// Create a user and log them in; returns their token.
    pub async fn user_token(&self, admin: &str, email: &str) -> String {
        let password = "user-password-1";
        let response = self.create_user(admin, email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "create user {email}");
        self.token(email, password).await
    }

    pub async fn logout(&self, token: &str) -> Response {
        self.post(token, "/api/auth/logout", None).await
    }

    pub async fn status_of(&self, token: &str, name: &str) -> String {
        let body: Value = self
            .get_agent(token, name)
            .await
            .json()
            .await
            .expect("json");
        body["status"].as_str().unwrap_or_default().to_string()
    }
}

/// A flotilla server running in this process (its own thread and actix system), with the
/// in-memory store.
pub struct TestApp {
    pub api: Api,
    pub instance: String,
    pub admin: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _data_dir: tempfile::TempDir,
    _cleanup: DockerCleanup,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawn with settings adjusted by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let instance = unique("test");
        let cleanup = DockerCleanup {
            instance: instance.clone(),
        };
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(&instance, data_dir.path());
        tweak(&mut config);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(config).await {
                    Ok(app) => {
                        let _ = tx.send(Ok((app.port(), app.handle())));
                        let _ = app.run_until_stopped().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
        let (port, handle) = tokio::task::spawn_blocking(move || rx.recv())
            .await
            .expect("join")
            .expect("server thread")
            .unwrap_or_else(|e| panic!("server failed to start: {e}"));
        let api = Api::new(port);
        let admin = api.admin_token().await;
        Self {
            api,
            instance,
            admin,
            handle,
            thread: Some(thread),
            _data_dir: data_dir,
            _cleanup: cleanup,
        }
    }

    /// Containers and volumes this server's instance has in Docker.
    pub fn docker_objects(&self) -> (Vec<String>, Vec<String>) {
        instance_objects(&self.instance)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = futures_util::FutureExt::now_or_never(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            // Bounded wait: the server drains quickly with no clients left.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A `flotilla serve` child process, for tests that kill the server or restart it on the same
/// data dir.
pub struct ServerProcess {
    pub api: Api,
    child: Child,
}

impl ServerProcess {
    /// Start the real binary on a free port with an on-disk store in `data_dir`.
    pub async fn start(instance: &str, data_dir: &Path) -> Self {
        Self::start_with_env(instance, data_dir, &[]).await
    }

    /// [`ServerProcess::start`] with extra environment variables.
    pub async fn start_with_env(instance: &str, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::fs::File::create(data_dir.join(format!("server-{port}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .arg("serve")
            .envs(env.iter().copied())
            .env("FLOTILLA_BIND", format!("127.0.0.1:{port}"))
            .env("FLOTILLA_DATA_DIR", data_dir)
            .env("FLOTILLA_INSTANCE", instance)
            .env("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("FLOTILLA_WORKERS", "2")
            .env_remove("FLOTILLA_DB")
            .env_remove("FLOTILLA_JWT_SECRET")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn flotilla");
        let api = Api::new(port);
        let mut server = Self { api, child };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("flotilla exited during start-up: {status}");
            }
            if let Ok(r) = self.api.client.get(self.api.url("/health")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(Instant::now() < deadline, "flotilla did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM (a graceful shutdown) without waiting.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Wait up to `within` for the process to exit; its exit status, or `None` if it is still
    /// running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `len` consecutive ports on 127.0.0.1 that were all free a moment ago, at a random place in
/// 20000-59999: a test app that opens SSH listeners gets its own `ssh_ports`, so parallel apps
/// (each with its own store, each leasing from the start of its range) never collide.
pub fn free_port_block(len: u16) -> std::ops::RangeInclusive<u16> {
    for _ in 0..200 {
        let seed = uuid::Uuid::new_v4().as_u128();
        let start = 20_000 + (seed % 40_000) as u16;
        let range = start..=start + len - 1;
        if range
            .clone()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            return range;
        }
    }
    panic!("no free block of {len} ports");
}

/// Poll `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
