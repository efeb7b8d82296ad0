//! Agent stats over real HTTP and real Docker: sampled in the background every period, read
//! from the latest sample.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::Value;

use crate::helpers::{Api, TestApp, eventually, unique};

/// A short sampling period, so tests see samples within seconds.
const PERIOD: Duration = Duration::from_secs(1);

impl Api {
    pub async fn agent_stats(&self, token: &str, name: &str) -> reqwest::Response {
        self.get(token, &format!("/api/agents/{name}/stats")).await
    }
}

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.stats_interval = PERIOD).await
}

async fn stats(app: &TestApp, token: &str, name: &str) -> (StatusCode, Value) {
    let response = app.agent_stats(token, name).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Wait until the agent has a sample, and return it.
async fn first_sample(app: &TestApp, name: &str) -> Value {
    let last = Mutex::new(Value::Null);
    eventually(Duration::from_secs(30), "a stats sample", || async {
        let (status, body) = stats(app, &app.admin, name).await;
        *last.lock().unwrap() = body;
        status == StatusCode::OK
    })
    .await;
    last.into_inner().unwrap()
}

#[tokio::test]
async fn busy_agent_shows_cpu_use_within_its_limits() {
    let app = spawn().await;
    let name = unique("busy");
    app.create_small(&app.admin, &name).await; // 0.25 CPU, 128m

    let burn = Command::new("docker")
        .args(["exec", "-d", &format!("agent-{name}")])
        .args(["sh", "-c", "while :; do :; done"])
        .status()
        .unwrap();
    assert!(burn.success());

    let last = Mutex::new(Value::Null);
    eventually(
        Duration::from_secs(30),
        "cpu_percent above 5 with a busy loop",
        || async {
            let (status, body) = stats(&app, &app.admin, &name).await;
            let busy = status == StatusCode::OK && body["cpu_percent"].as_f64().unwrap() > 5.0;
            *last.lock().unwrap() = body;
            busy
        },
    )
    .await;
    let body = last.into_inner().unwrap();

    // The NanoCPUs limit holds: a busy loop gets about a quarter of one CPU.
    assert!(body["cpu_percent"].as_f64().unwrap() <= 40.0, "{body}");
    assert_eq!(body["memory_limit_bytes"], 134_217_728, "{body}");
    let used = body["memory_used_bytes"].as_u64().unwrap();
    assert!(used > 0 && used < 134_217_728, "{body}");
    let percent = body["memory_percent"].as_f64().unwrap();
    assert!(percent > 0.0 && percent < 100.0, "{body}");
    assert_eq!(body["status"], "running");
    assert!(body["network_rx_bytes"].is_u64(), "{body}");
    assert!(body["network_tx_bytes"].is_u64(), "{body}");
    assert!(body["uptime_seconds"].is_u64(), "{body}");
    assert!(
        body["sampled_at"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );
    assert!(
        body["sample_age_seconds"].as_f64().unwrap() >= 0.0,
        "{body}"
    );
}

#[tokio::test]
async fn running_agent_without_samples_is_503_with_retry_after() {
    // The first cycle runs at start-up, before the agent exists; the next one is an hour away.
    let app = TestApp::spawn_with(|c| c.stats_interval = Duration::from_secs(3600)).await;
    let name = unique("fresh");
    app.create_small(&app.admin, &name).await;

    let response = app.agent_stats(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "3600");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_ready", "{body}");
    assert!(body["detail"].as_str().unwrap().contains(&name), "{body}");
}

#[tokio::test]
async fn stopped_agent_stats_are_409_and_come_back_after_start() {
    let app = spawn().await;
    let name = unique("stopped");
    app.create_small(&app.admin, &name).await;
    first_sample(&app, &name).await;

    assert_eq!(
        app.stop_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let (status, body) = stats(&app, &app.admin, &name).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("agent '{name}' is not running")),
        "{body}"
    );

    assert_eq!(
        app.start_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let body = first_sample(&app, &name).await;
    assert_eq!(body["status"], "running");
}

#[tokio::test]
async fn stats_of_another_users_agent_are_404() {
    let app = spawn().await;
    let name = unique("private");
    app.create_small(&app.admin, &name).await;
    first_sample(&app, &name).await;

    let stranger = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    let (status, body) = stats(&app, &stranger, &name).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["detail"].is_string(), "{body}");
    // Same answer as for a name that does not exist.
    let (status, _) = stats(&app, &stranger, &unique("nobody")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_answers_while_the_sampler_runs() {
    let app = spawn().await;
    let names: Vec<String> = (0..3).map(|_| unique("listed")).collect();
    futures_util::future::join_all(names.iter().map(|n| app.create_small(&app.admin, n))).await;
    let first = first_sample(&app, &names[0]).await;

    // A Docker stats reading takes about a second, as long as the period: from here until the
    // next sample lands, the sampler is reading. The listing must answer all along.
    let mut listings = 0;
    loop {
        let lists = futures_util::future::join_all((0..4).map(|_| app.list_agents(&app.admin)));
        for response in lists.await {
            assert_eq!(response.status(), StatusCode::OK);
            let agents: Value = response.json().await.unwrap();
            assert_eq!(agents.as_array().unwrap().len(), 3);
            listings += 1;
        }
        let (status, now) = stats(&app, &app.admin, &names[0]).await;
        assert_eq!(status, StatusCode::OK, "{now}");
        if now["sampled_at"] != first["sampled_at"] {
            break;
        }
        assert!(
            listings < 100_000,
            "the sampler never produced a new sample"
        );
    }
    assert!(listings >= 4);
}
