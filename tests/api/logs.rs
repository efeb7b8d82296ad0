//! Agent logs.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, unique};

/// Write lines to the agent's own stdout and stderr (those of its PID 1), as its process would.
fn say(container: &str, script: &str) {
    let status = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn logs(app: &TestApp, name: &str, query: &str) -> (StatusCode, Value) {
    let response = app
        .get(&app.admin, &format!("/api/agents/{name}/logs{query}"))
        .await;
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn logs_return_stdout_and_stderr_in_order_and_honour_tail() {
    let app = TestApp::spawn().await;
    let name = unique("talk");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    // Docker timestamps each line when it copies it from the stream, so lines written within
    // the same instant on two streams have no defined order; space them out.
    say(
        &container,
        "for i in 1 2 3; do echo out-$i > /proc/1/fd/1; sleep 0.1; \
         echo err-$i > /proc/1/fd/2; sleep 0.1; done",
    );
    let (status, body) = logs(&app, &name, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body["logs"].as_str().unwrap();
    assert!(
        text.contains(&format!("flotilla agent {name} ready")),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| l.contains('-')).collect();
    assert!(
        lines.ends_with(&["out-1", "err-1", "out-2", "err-2", "out-3", "err-3"]),
        "{lines:?}"
    );

    let (_, body) = logs(&app, &name, "?tail=2").await;
    assert_eq!(body["logs"], "out-3\nerr-3\n");
    let (_, body) = logs(&app, &name, "?tail=0").await;
    assert_eq!(body["logs"], "");
    // Huge values are capped, not refused.
    let (status, _) = logs(&app, &name, "?tail=1000000000000").await;
    assert_eq!(status, StatusCode::OK);
    for bad in [
        "?tail=-1",
        "?tail=abc",
        "?tail=1.5",
        "?tail=99999999999999999999999",
    ] {
        let (status, body) = logs(&app, &name, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].is_string());
    }
    // Logs stay readable once the agent is stopped.
    app.stop_agent(&app.admin, &name).await;
    let (status, body) = logs(&app, &name, "?tail=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["logs"], "err-3\n");
}

#[tokio::test]
async fn follow_streams_new_lines_live() {
    let app = TestApp::spawn().await;
    let name = unique("follow");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let response = app
        .get(
            &app.admin,
            &format!("/api/agents/{name}/logs?follow=true&tail=0"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let mut stream = response.bytes_stream();
    say(&container, "echo live-line > /proc/1/fd/1");
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains("live-line") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "saw {seen:?}");
    drop(stream);
}

#[tokio::test]
async fn logs_are_invisible_to_strangers() {
    let app = TestApp::spawn().await;
    let name = unique("private");
    app.create_small(&app.admin, &name).await;
    let other = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    let response = app.get(&other, &format!("/api/agents/{name}/logs")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
