//! Rate limits over real HTTP: per user for the API (429 with `Retry-After` and a JSON detail,
//! other users unaffected) and per IP for failed logins, both counted in `/metrics`; and the
//! fleet-wide limit on concurrent Docker-mutating calls, under which a burst of creates queues.

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, unique};

fn counted(text: &str, scope: &str) -> f64 {
    let series = format!("flotilla_rate_limited_requests_total{{scope=\"{scope}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_user_over_the_rate_gets_429_with_retry_after_while_others_are_served() {
    let app = TestApp::spawn_with(|c| {
        c.api_rate_per_second = 1;
        c.api_burst = 5;
    })
    .await;
    let ana = app
        .user_token(&app.admin, &format!("{}@example.com", unique("ana")))
        .await;
    let bo = app
        .user_token(&app.admin, &format!("{}@example.com", unique("bo")))
        .await;

    // The burst is 5 and one request a second comes back: 30 quick requests must hit the limit.
    let mut limited = None;
    for _ in 0..30 {
        let response = app.list_agents(&ana).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
    }
    let limited = limited.expect("a 429 within 30 requests");
    let retry_after: u64 = limited.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rate limit")),
        "{body}"
    );

    // Another user is unaffected.
    assert_eq!(app.list_agents(&bo).await.status(), StatusCode::OK);
    assert_eq!(
        app.get(&bo, "/api/agents/context-stats").await.status(),
        StatusCode::OK
    );

    let text = app.metrics_text().await;
    assert!(counted(&text, "api") >= 1.0, "{text}");
}

#[tokio::test]
async fn failed_logins_over_the_limit_are_refused_and_counted() {
    let app = TestApp::spawn_with(|c| {
        c.login_burst = 1;
        c.login_per_minute = 1;
    })
    .await;
    assert_eq!(
        app.login("admin", "wrong-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let refused = app.login("admin", "wrong-password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    let text = app.metrics_text().await;
    assert_eq!(counted(&text, "login"), 1.0, "{text}");
}

#[tokio::test]
async fn a_burst_of_creates_queues_behind_the_docker_limit_instead_of_failing() {
    // One mutating Docker call at a time: six concurrent creates (each several calls) queue.
    let app = TestApp::spawn_with(|c| c.docker_concurrency = 1).await;
    let names: Vec<String> = (0..6).map(|_| unique("queued")).collect();
    let creates = names.iter().map(|name| {
        app.create_agent(
            &app.admin,
            serde_json::json!({"name": name, "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
    });
    for (name, response) in names
        .iter()
        .zip(futures_util::future::join_all(creates).await)
    {
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "create {name}: {body}");
        assert_eq!(body["status"], "running", "{body}");
    }
    let text = app.metrics_text().await;
    assert!(
        text.contains("flotilla_docker_call_duration_seconds_count{op=\"starting_container\"}"),
        "{text}"
    );
}
