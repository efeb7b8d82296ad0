//! Shared folders between agents, over real mounts.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, docker_state, unique};

fn sh(container: &str, script: &str) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn set(app: &TestApp, token: &str, name: &str, body: Value, apply: bool) -> Value {
    let path = format!("/api/agents/{name}/folders?apply={apply}");
    let response = app.put(token, &path, body).await;
    let status = response.status();
    let json: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get(token, path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

fn volume_exists(name: &str) -> bool {
    std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn a_consumer_reads_a_producers_folder_and_cannot_write_it() {
    let app = TestApp::spawn().await;
    let producer = unique("producer");
    let consumer = unique("consumer");
    let p = app.create_small(&app.admin, &producer).await;
    app.create_small(&app.admin, &consumer).await;

    let body = set(
        &app,
        &app.admin,
        &producer,
        json!({"expose_enabled": true}),
        true,
    )
    .await;
    assert_eq!(body["expose_enabled"], true);
    assert_eq!(body["exposed_path"], "/home/developer/shared-out");
    assert_eq!(body["container_recreated"], true);
    assert_eq!(body["restart_required"], false);
    let (ok, out) = sh(
        &format!("agent-{producer}"),
        "echo published > ~/shared-out/report.txt",
    );
    assert!(ok, "{out}");

    // Consume without applying: configured, but the running container is behind.
    let body = set(
        &app,
        &app.admin,
        &consumer,
        json!({"consume_enabled": true}),
        false,
    )
    .await;
    assert_eq!(body["restart_required"], true);
    assert_eq!(body["consumed_folders"][0]["source_agent"], producer);
    assert_eq!(body["consumed_folders"][0]["currently_mounted"], false);
    // A restart applies it.
    app.stop_agent(&app.admin, &consumer).await;
    app.start_agent(&app.admin, &consumer).await;
    let body = get(&app, &app.admin, &format!("/api/agents/{consumer}/folders")).await;
    assert_eq!(body["restart_required"], false, "{body}");
    assert_eq!(
        body["consumed_folders"],
        json!([{"source_agent": producer,
                "mount_path": format!("/home/developer/shared-in/{producer}"),
                "currently_mounted": true}])
    );
    let c = format!("agent-{consumer}");
    assert_eq!(
        sh(&c, &format!("cat ~/shared-in/{producer}/report.txt")).1,
        "published\n"
    );
    let (wrote, out) = sh(&c, &format!("echo x > ~/shared-in/{producer}/mine.txt"));
    assert!(!wrote, "consumer wrote into a producer's folder: {out}");
    // Live: a new file in the producer appears at once.
    sh(
        &format!("agent-{producer}"),
        "echo second > ~/shared-out/second.txt",
    );
    assert_eq!(
        sh(&c, &format!("cat ~/shared-in/{producer}/second.txt")).1,
        "second\n"
    );

    let available = get(
        &app,
        &app.admin,
        &format!("/api/agents/{consumer}/folders/available"),
    )
    .await;
    assert_eq!(available["count"], 1);
    assert_eq!(available["available_folders"][0]["source_agent"], producer);
    let consumers = get(
        &app,
        &app.admin,
        &format!("/api/agents/{producer}/folders/consumers"),
    )
    .await;
    assert_eq!(consumers["source_agent"], producer);
    assert_eq!(consumers["count"], 1);
    assert_eq!(consumers["consumers"][0]["agent_name"], consumer);
    assert_eq!(consumers["consumers"][0]["currently_mounted"], true);

    // Deleting the producer detaches its folder from the consumer (which keeps running) and
    // removes the folder.
    assert_eq!(
        app.delete_agent(&app.admin, &producer).await.status(),
        StatusCode::OK
    );
    let shared = format!("flotilla-{}-shared", p["id"].as_str().unwrap());
    assert!(!volume_exists(&shared), "{shared} left behind");
    assert_eq!(docker_state(&c).as_deref(), Some("running"));
    let (listed, _) = sh(&c, &format!("ls ~/shared-in/{producer}/report.txt"));
    assert!(!listed);
    let body = get(&app, &app.admin, &format!("/api/agents/{consumer}/folders")).await;
    assert_eq!(body["consumed_folders"], json!([]));
    assert_eq!(body["restart_required"], false);
}

#[tokio::test]
async fn only_producers_the_consumers_owner_may_access_are_mounted() {
    let app = TestApp::spawn().await;
    let alice = app
        .user_token(&app.admin, &format!("{}@example.com", unique("alice")))
        .await;
    let bob = app
        .user_token(&app.admin, &format!("{}@example.com", unique("bob")))
        .await;
    let private = unique("private");
    let consumer = unique("bobs");
    app.create_small(&alice, &private).await;
    app.create_small(&bob, &consumer).await;
    set(
        &app,
        &alice,
        &private,
        json!({"expose_enabled": true}),
        true,
    )
    .await;
    sh(
        &format!("agent-{private}"),
        "echo secret > ~/shared-out/s.txt",
    );

    let body = set(
        &app,
        &bob,
        &consumer,
        json!({"consume_enabled": true}),
        true,
    )
    .await;
    assert_eq!(body["consumed_folders"], json!([]));
    let available = get(
        &app,
        &bob,
        &format!("/api/agents/{consumer}/folders/available"),
    )
    .await;
    assert_eq!(available["count"], 0);
    let (found, _) = sh(&format!("agent-{consumer}"), "ls ~/shared-in");
    assert!(!found, "bob's agent has a shared-in folder");
    // Alice sees no consumers she cannot see.
    let consumers = get(
        &app,
        &alice,
        &format!("/api/agents/{private}/folders/consumers"),
    )
    .await;
    assert_eq!(consumers["count"], 0);

    // Once Alice shares it with Bob, Bob's agent may mount it.
    let shared = app
        .post(
            &alice,
            &format!("/api/agents/{private}/share"),
            Some(json!({"email": app_email(&app, &bob).await})),
        )
        .await;
    assert_eq!(shared.status(), StatusCode::OK);
    let body = get(&app, &bob, &format!("/api/agents/{consumer}/folders")).await;
    assert_eq!(body["restart_required"], true);
    set(&app, &bob, &consumer, json!({}), true).await;
    assert_eq!(
        sh(
            &format!("agent-{consumer}"),
            &format!("cat ~/shared-in/{private}/s.txt")
        )
        .1,
        "secret\n"
    );
}

async fn app_email(app: &TestApp, token: &str) -> String {
    let me: Value = app.get(token, "/api/users/me").await.json().await.unwrap();
    me["username"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn folders_follow_a_producer_rename_and_work_with_read_only() {
    let app = TestApp::spawn().await;
    let producer = unique("src");
    let consumer = unique("dst");
    app.create_small(&app.admin, &producer).await;
    app.create_small(&app.admin, &consumer).await;
    set(
        &app,
        &app.admin,
        &producer,
        json!({"expose_enabled": true}),
        true,
    )
    .await;
    sh(&format!("agent-{producer}"), "echo v1 > ~/shared-out/v.txt");
    // The consumer's own workspace is read-only: its mount points are made for it.
    let ro = app
        .put(
            &app.admin,
            &format!("/api/agents/{consumer}/read-only"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(ro.status(), StatusCode::OK);
    set(
        &app,
        &app.admin,
        &consumer,
        json!({"consume_enabled": true}),
        true,
    )
    .await;
    let c = format!("agent-{consumer}");
    assert_eq!(
        sh(&c, &format!("cat ~/shared-in/{producer}/v.txt")).1,
        "v1\n"
    );

    let renamed = unique("renamed");
    assert_eq!(
        app.rename_agent(&app.admin, &producer, &renamed)
            .await
            .status(),
        StatusCode::OK
    );
    let body = get(&app, &app.admin, &format!("/api/agents/{consumer}/folders")).await;
    assert_eq!(body["restart_required"], true, "{body}");
    assert_eq!(body["consumed_folders"][0]["source_agent"], renamed);
    app.stop_agent(&app.admin, &consumer).await;
    app.start_agent(&app.admin, &consumer).await;
    assert_eq!(
        sh(&c, &format!("cat ~/shared-in/{renamed}/v.txt")).1,
        "v1\n"
    );

    // Validation and access.
    let bad = app
        .put(
            &app.admin,
            &format!("/api/agents/{consumer}/folders"),
            json!({"expose_enabled": "yes"}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let stranger = app
        .user_token(&app.admin, &format!("{}@example.com", unique("s")))
        .await;
    assert_eq!(
        app.get(&stranger, &format!("/api/agents/{consumer}/folders"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
