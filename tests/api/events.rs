//! Events: the WebSocket feed and Docker-event reconciliation.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{TestApp, docker_state, eventually, unique};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, query_token: Option<&str>) -> Socket {
    let url = match query_token {
        Some(token) => format!("ws://127.0.0.1:{}/ws?token={token}", port(app)),
        None => format!("ws://127.0.0.1:{}/ws", port(app)),
    };
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// The next JSON text message, within `within`.
async fn next_json(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??;
        match message.ok()? {
            Message::Text(text) => return serde_json::from_str(text.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Read events until one matches, failing after `within`.
async fn expect_event(socket: &mut Socket, event: &str, name: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(message) = next_json(socket, left).await else {
            panic!("no {event} for {name} within {within:?}; saw {seen:?}");
        };
        if message["event"] == event && message["name"] == name {
            return message;
        }
        seen.push(message);
    }
}

async fn close_code(socket: &mut Socket) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Some(frame.code),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => return None,
        }
    }
}

#[tokio::test]
async fn each_session_gets_only_the_events_of_agents_its_user_can_see() {
    let app = TestApp::spawn().await;
    let alice_email = format!("{}@example.com", unique("alice"));
    let alice = app.user_token(&app.admin, &alice_email).await;
    let bob_email = format!("{}@example.com", unique("bob"));
    let bob = app.user_token(&app.admin, &bob_email).await;

    let mut alice_ws = connect(&app, Some(&alice)).await;
    // Bob authenticates with a first message instead of the URL.
    let mut bob_ws = connect(&app, None).await;
    bob_ws
        .send(Message::Text(format!("Bearer {bob}").into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut alice_ws, Duration::from_secs(5))
            .await
            .unwrap()["type"],
        "connected"
    );
    assert_eq!(
        next_json(&mut bob_ws, Duration::from_secs(5))
            .await
            .unwrap()["type"],
        "connected"
    );
    // ping / pong.
    alice_ws
        .send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut alice_ws, Duration::from_secs(5))
            .await
            .unwrap(),
        json!({"type": "pong"})
    );

    let hers = unique("hers");
    app.create_small(&alice, &hers).await;
    let created = expect_event(
        &mut alice_ws,
        "agent_created",
        &hers,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(created["type"], "agent_created");
    assert!(created["ts"].is_string() && created["agent_id"].is_string());
    app.stop_agent(&alice, &hers).await;
    expect_event(
        &mut alice_ws,
        "agent_stopped",
        &hers,
        Duration::from_secs(10),
    )
    .await;
    app.start_agent(&alice, &hers).await;
    expect_event(
        &mut alice_ws,
        "agent_started",
        &hers,
        Duration::from_secs(10),
    )
    .await;

    // Bob heard nothing of it: the next thing he hears is about his own agent.
    let his = unique("his");
    app.create_small(&bob, &his).await;
    let first = next_json(&mut bob_ws, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(first["name"], his, "bob got {first}");

    // Shared with Bob: now he hears about it; unshared: no more.
    let shared = app
        .post(
            &alice,
            &format!("/api/agents/{hers}/share"),
            Some(json!({"email": bob_email})),
        )
        .await;
    assert_eq!(shared.status(), StatusCode::OK);
    expect_event(&mut bob_ws, "agent_shared", &hers, Duration::from_secs(10)).await;
    app.stop_agent(&alice, &hers).await;
    expect_event(&mut bob_ws, "agent_stopped", &hers, Duration::from_secs(10)).await;
    let removed = app
        .delete(&alice, &format!("/api/agents/{hers}/share/{bob_email}"))
        .await;
    assert_eq!(removed.status(), StatusCode::OK);
    app.start_agent(&alice, &hers).await;
    app.stop_agent(&bob, &his).await;
    let next = next_json(&mut bob_ws, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(next["name"], his, "bob got {next}");
    assert_eq!(next["event"], "agent_stopped");

    // Deletion reaches the owner even though the agent no longer exists.
    app.delete_agent(&alice, &hers).await;
    let deleted = expect_event(
        &mut alice_ws,
        "agent_deleted",
        &hers,
        Duration::from_secs(10),
    )
    .await;
    assert!(deleted["data"].get("audience").is_none(), "{deleted}");
}

#[tokio::test]
async fn bad_or_missing_tokens_close_the_socket_with_4001() {
    let app = TestApp::spawn().await;
    let mut garbage = connect(&app, Some("garbage")).await;
    assert_eq!(close_code(&mut garbage).await, Some(CloseCode::from(4001)));
    let mut wrong_message = connect(&app, None).await;
    wrong_message
        .send(Message::Text("hello".into()))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut wrong_message).await,
        Some(CloseCode::from(4001))
    );
    // A logged-out token is refused too.
    let token = app.admin_token().await;
    app.logout(&token).await;
    let mut revoked = connect(&app, Some(&token)).await;
    assert_eq!(close_code(&mut revoked).await, Some(CloseCode::from(4001)));
}

#[tokio::test]
async fn a_container_killed_outside_is_reported_stopped_with_agent_died() {
    let app = TestApp::spawn().await;
    let name = unique("victim");
    app.create_small(&app.admin, &name).await;
    let mut socket = connect(&app, Some(&app.admin)).await;
    next_json(&mut socket, Duration::from_secs(5)).await;
    let killed = std::process::Command::new("docker")
        .args(["kill", &format!("agent-{name}")])
        .output()
        .unwrap();
    assert!(killed.status.success());
    let died = expect_event(&mut socket, "agent_died", &name, Duration::from_secs(2)).await;
    assert_eq!(died["data"]["exit_code"], 137);
    assert_eq!(died["data"]["oom_killed"], false);
    eventually(Duration::from_secs(2), "status stopped", || async {
        app.status_of(&app.admin, &name).await == "stopped"
    })
    .await;
    // It starts again normally.
    assert_eq!(
        app.start_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.status_of(&app.admin, &name).await, "running");
}

#[tokio::test]
async fn a_container_removed_outside_is_recreated_with_its_data_on_next_start() {
    let app = TestApp::spawn().await;
    let name = unique("removed");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let wrote = std::process::Command::new("docker")
        .args(["exec", &container, "sh", "-c", "echo survived > ~/data.txt"])
        .status()
        .unwrap();
    assert!(wrote.success());
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .output()
        .unwrap();
    assert!(removed.status.success());
    eventually(Duration::from_secs(2), "status stopped", || async {
        app.status_of(&app.admin, &name).await == "stopped"
    })
    .await;
    let agent: Value = app.get_agent(&app.admin, &name).await.json().await.unwrap();
    assert_eq!(agent["container_id"], Value::Null);
    assert_eq!(
        app.start_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    assert_eq!(docker_state(&container).as_deref(), Some("running"));
    let out = std::process::Command::new("docker")
        .args(["exec", &container, "cat", "/home/developer/data.txt"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "survived\n");
}
