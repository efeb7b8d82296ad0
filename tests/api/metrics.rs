//! `/metrics` over real HTTP: valid exposition (checked by `promtool`), per-agent series from
//! the stats sampler that vanish with the agent, the bearer token, and a real Prometheus server
//! scraping it.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::{Api, METRICS_TOKEN, TestApp, eventually, free_port, unique};

impl Api {
    /// `GET /metrics` with `token` as the bearer token (none when `None`).
    pub async fn metrics(&self, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// The metrics text, failing the test on anything but 200.
    pub async fn metrics_text(&self) -> String {
        let response = self.metrics(Some(METRICS_TOKEN)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("body")
    }
}

/// `promtool check metrics` of `text` (on stdin): (passed, its output).
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (installed by .ci/deps: Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

/// The value of the series `line_start` (name and labels, as printed), if present.
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
}

#[tokio::test]
async fn metrics_are_valid_exposition_with_series_per_running_agent_until_it_is_deleted() {
    let app = TestApp::spawn_with(|c| c.stats_interval = Duration::from_secs(1)).await;
    let name = unique("metered");
    let agent = app.create_small(&app.admin, &name).await;
    let id = agent["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.get_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let labels = format!("{{agent=\"{name}\",id=\"{id}\"}}");

    let last = Mutex::new(String::new());
    eventually(
        Duration::from_secs(30),
        "a stats sample in /metrics",
        || async {
            let text = app.metrics_text().await;
            let sampled = text.contains(&format!("flotilla_agent_cpu_seconds_total{labels}"));
            *last.lock().unwrap() = text;
            sampled
        },
    )
    .await;
    let text = last.into_inner().unwrap();

    let (valid, report) = promtool(&text);
    assert!(valid, "promtool check metrics: {report}\n{text}");

    // Per agent.
    assert_eq!(
        value(
            &text,
            &format!("flotilla_agent_status{{agent=\"{name}\",id=\"{id}\",status=\"running\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!("flotilla_agent_memory_limit_bytes{labels}")),
        Some(134_217_728.0)
    );
    let memory = value(
        &text,
        &format!("flotilla_agent_memory_working_set_bytes{labels}"),
    );
    assert!(memory.is_some_and(|m| m > 0.0), "{text}");
    for family in [
        "flotilla_agent_network_receive_bytes_total",
        "flotilla_agent_network_transmit_bytes_total",
        "flotilla_agent_restarts_total",
        "flotilla_agent_last_seen_timestamp_seconds",
    ] {
        assert!(
            value(&text, &format!("{family}{labels}")).is_some(),
            "{family} of the agent: {text}"
        );
    }
    // Fleet-wide.
    assert!(value(&text, "flotilla_agents{status=\"running\"}").is_some_and(|n| n >= 1.0));
    assert!(
        value(
            &text,
            "flotilla_operations_total{kind=\"provision\",outcome=\"ok\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        value(&text, "flotilla_actor_requests_in_flight").is_some(),
        "{text}"
    );
    assert!(
        value(&text, "flotilla_websocket_sessions").is_some(),
        "{text}"
    );
    assert!(
        text.contains("flotilla_docker_call_duration_seconds_bucket{op=\"creating_container\","),
        "{text}"
    );
    assert!(
        text.contains(
            "flotilla_http_request_duration_seconds_count{method=\"POST\",route=\"/api/agents\",status=\"2xx\"}"
        ),
        "{text}"
    );
    // Routes are patterns: no agent name becomes a label value of the HTTP histogram.
    assert!(
        text.contains("route=\"/api/agents/{name}\",status=\"2xx\""),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("flotilla_http") && l.contains(&name)),
        "{text}"
    );
    assert!(value(&text, "flotilla_stats_cycles_total").is_some_and(|n| n >= 1.0));

    // Deleted: its series are gone at once.
    assert_eq!(
        app.delete_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let text = app.metrics_text().await;
    assert!(
        !text.contains(&format!("agent=\"{name}\"")),
        "series of a deleted agent: {text}"
    );
    assert!(
        value(
            &text,
            "flotilla_operations_total{kind=\"delete_agent\",outcome=\"ok\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_token() {
    let app = TestApp::spawn().await;
    let response = app.metrics(Some(METRICS_TOKEN)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain") && content_type.contains("version=0.0.4"),
        "{content_type}"
    );
    // Documented with its own scheme: the metrics token, not a user's JWT.
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["security"][0]["metrics_token"],
        serde_json::json!([]),
        "{}",
        doc["paths"]["/metrics"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["metrics_token"]["scheme"],
        "bearer"
    );
    for token in [None, Some("wrong-token"), Some(app.admin.as_str())] {
        let response = app.metrics(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn metrics_are_404_without_a_token_unless_explicitly_open() {
    let closed = TestApp::spawn_with(|c| c.metrics_token = None).await;
    let response = closed.metrics(None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
    assert_eq!(
        closed.metrics(Some(METRICS_TOKEN)).await.status(),
        StatusCode::NOT_FOUND
    );

    let open = TestApp::spawn_with(|c| {
        c.metrics_token = None;
        c.metrics_open = true;
    })
    .await;
    let response = open.metrics(None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("flotilla_agents{status=\"running\"}")
    );
}

/// A Prometheus server (Debian's package), killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: flotilla\n    metrics_path: /metrics\n\
                 \x20   authorization:\n      credentials: {token}\n\
                 \x20   static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (installed by .ci/deps: Debian's prometheus package)");
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_it_with_the_token() {
    let app = TestApp::spawn().await;
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let prometheus = Prometheus::start(port, METRICS_TOKEN);
    let client = reqwest::Client::new();
    let targets = format!("http://127.0.0.1:{}/api/v1/targets", prometheus.port);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let body: Value = match client.get(&targets).send().await {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if body["data"]["activeTargets"][0]["health"] == "up" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flotilla target is not up within 60 s: {body}\nprometheus log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // And it holds flotilla's own series.
    let query = format!(
        "http://127.0.0.1:{}/api/v1/query?query=flotilla_agents",
        prometheus.port
    );
    let last = Mutex::new(Value::Null);
    eventually(
        Duration::from_secs(30),
        "flotilla_agents in Prometheus",
        || async {
            let body: Value = client
                .get(&query)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or(Value::Null);
            let found = body["data"]["result"]
                .as_array()
                .is_some_and(|r| r.len() == 4);
            *last.lock().unwrap() = body;
            found
        },
    )
    .await;
}
