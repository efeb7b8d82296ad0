//! Agent settings: autonomy, read-only mode and execution timeout, applied for real.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, docker_state, inspect, unique};

/// Run a shell script in the agent's container as its user; (success, stdout + stderr).
fn sh(container: &str, script: &str) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn json_file(container: &str, path: &str) -> Value {
    let (ok, text) = sh(container, &format!("cat {path}"));
    assert!(ok, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {text}"))
}

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app.put(token, path, body).await;
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn get(app: &TestApp, path: &str) -> Value {
    let response = app.get(&app.admin, path).await;
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn autonomy_round_trips_and_sets_the_runtime_permission_mode() {
    let app = TestApp::spawn().await;
    let name = unique("auto");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let path = format!("/api/agents/{name}/autonomy");

    assert_eq!(
        get(&app, &path).await,
        json!({"agent_name": name, "autonomy_enabled": false})
    );
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "default");

    // The agent's own settings survive flotilla's changes.
    let (ok, out) = sh(
        &container,
        r#"printf '{"theme":"dark","permissions":{"allow":["Bash(ls)"]}}' > ~/.claude/settings.json"#,
    );
    assert!(ok, "{out}");
    let (status, body) = put(&app, &app.admin, &path, json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["autonomy_enabled"], true);
    assert_eq!(get(&app, &path).await["autonomy_enabled"], true);
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "bypassPermissions");
    assert_eq!(settings["permissions"]["allow"], json!(["Bash(ls)"]));
    assert_eq!(settings["theme"], "dark");
    assert_eq!(
        json_file(&container, "~/.claude/flotilla.json")["approval_mode"],
        "bypassPermissions"
    );

    // Re-applied on every start, even if the agent changed it meanwhile.
    sh(&container, r#"printf '{}' > ~/.claude/settings.json"#);
    app.stop_agent(&app.admin, &name).await;
    app.start_agent(&app.admin, &name).await;
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "bypassPermissions");

    let (_, body) = put(&app, &app.admin, &path, json!({"enabled": false})).await;
    assert_eq!(body["autonomy_enabled"], false);
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "default");

    for bad in [
        json!({"enabled": "yes"}),
        json!({}),
        json!({"enabled": true, "x": 1}),
    ] {
        let (status, body) = put(&app, &app.admin, &path, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

/// When flotilla last wrote the runtime files: the change time (ns) of `flotilla.json`, a file
/// only flotilla writes, and only together with the others. (The server's Docker-call metrics
/// would say it too, but every test's server in this process shares them.)
fn files_written_at(container: &str) -> String {
    let (ok, out) = sh(container, "stat -c %z ~/.claude/flotilla.json");
    assert!(ok, "{out}");
    out.trim().to_string()
}

#[tokio::test]
async fn a_start_writes_the_runtime_files_only_when_they_differ() {
    let app = TestApp::spawn().await;
    let name = unique("rewrite");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let restart = || async {
        assert_eq!(
            app.stop_agent(&app.admin, &name).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            app.start_agent(&app.admin, &name).await.status(),
            StatusCode::OK
        );
    };
    let created = files_written_at(&container);

    // Nothing changed: the start reads settings.json and writes nothing.
    restart().await;
    assert_eq!(files_written_at(&container), created);

    // The agent changed its settings: the next start merges flotilla's keys back in.
    let (ok, out) = sh(
        &container,
        r#"printf '{"theme":"dark","permissions":{"defaultMode":"bypassPermissions"}}' > ~/.claude/settings.json"#,
    );
    assert!(ok, "{out}");
    restart().await;
    let rewritten = files_written_at(&container);
    assert_ne!(rewritten, created);
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "default");
    assert_eq!(settings["theme"], "dark");

    // A configuration change writes; the start after it has nothing left to write.
    let path = format!("/api/agents/{name}/autonomy");
    let (status, body) = put(&app, &app.admin, &path, json!({"enabled": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let configured = files_written_at(&container);
    assert_ne!(configured, rewritten);
    restart().await;
    assert_eq!(files_written_at(&container), configured);
    let settings = json_file(&container, "~/.claude/settings.json");
    assert_eq!(settings["permissions"]["defaultMode"], "bypassPermissions");
}

#[tokio::test]
async fn gemini_agents_get_their_approval_mode() {
    let app = TestApp::spawn().await;
    let name = unique("gem");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": name, "runtime": "gemini-cli",
                   "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let container = format!("agent-{name}");
    let path = format!("/api/agents/{name}/autonomy");
    put(&app, &app.admin, &path, json!({"enabled": true})).await;
    let settings = json_file(&container, "~/.gemini/settings.json");
    assert_eq!(settings["general"]["defaultApprovalMode"], "auto_edit");
    assert_eq!(
        json_file(&container, "~/.gemini/flotilla.json")["approval_mode"],
        "yolo"
    );
}

#[tokio::test]
async fn timeout_round_trips_within_bounds_and_reaches_the_runtime() {
    let app = TestApp::spawn().await;
    let name = unique("timeout");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let path = format!("/api/agents/{name}/timeout");

    let body = get(&app, &path).await;
    assert_eq!(body["execution_timeout_seconds"], 900);
    assert_eq!(body["execution_timeout_minutes"], 15.0);
    let (status, body) = put(
        &app,
        &app.admin,
        &path,
        json!({"execution_timeout_seconds": 1800}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["execution_timeout_seconds"], 1800);
    assert_eq!(body["applies_on_next_start"], true);
    assert_eq!(get(&app, &path).await["execution_timeout_minutes"], 30.0);
    assert_eq!(
        json_file(&container, "~/.claude/flotilla.json")["execution_timeout_seconds"],
        1800
    );
    // The environment follows at the next start.
    app.stop_agent(&app.admin, &name).await;
    app.start_agent(&app.admin, &name).await;
    let (_, env) = sh(&container, "echo $AGENT_EXECUTION_TIMEOUT");
    assert_eq!(env.trim(), "1800");

    for bad in [
        json!({"execution_timeout_seconds": 59}),
        json!({"execution_timeout_seconds": 7201}),
        json!({"execution_timeout_seconds": -1}),
        json!({"execution_timeout_seconds": 900.5}),
        json!({"execution_timeout_seconds": "900"}),
        json!({}),
    ] {
        let (status, body) = put(&app, &app.admin, &path, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(body["detail"].is_string());
    }
    let huge = app
        .client
        .put(app.url(&path))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(r#"{"execution_timeout_seconds": 99999999999999999999999}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(get(&app, &path).await["execution_timeout_seconds"], 1800);
}

#[tokio::test]
async fn read_only_is_enforced_by_the_mount_and_keeps_identity_and_data() {
    let app = TestApp::spawn().await;
    let name = unique("ro");
    let before = app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let path = format!("/api/agents/{name}/read-only");
    assert!(sh(&container, "echo kept > ~/notes.txt").0);
    assert_eq!(
        get(&app, &path).await,
        json!({"agent_name": name, "enabled": false,
               "config": {"blocked_patterns": [], "allowed_patterns": []}})
    );

    let (status, body) = put(
        &app,
        &app.admin,
        &path,
        json!({"enabled": true, "config": {"blocked_patterns": ["*.py"], "allowed_patterns": ["*/scratch/*"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["container_recreated"], true);
    assert_eq!(body["config"]["blocked_patterns"], json!(["*.py"]));
    assert_eq!(docker_state(&container).as_deref(), Some("running"));

    // The container refuses the write; the runtime's state directory and /tmp stay writable.
    let (ok, out) = sh(&container, "echo x > /home/developer/f");
    assert!(!ok, "write into a read-only workspace succeeded: {out}");
    assert!(out.contains("Read-only"), "{out}");
    assert!(sh(&container, "echo x > ~/.claude/state && echo x > /tmp/t").0);
    assert_eq!(sh(&container, "cat ~/notes.txt").1, "kept\n");
    let mounts = inspect(&container)["Mounts"].clone();
    let workspace = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/home/developer")
        .unwrap()
        .clone();
    assert_eq!(workspace["RW"], false);
    // The hook is installed as a second layer, with the patterns.
    let settings = json_file(&container, "~/.claude/settings.json");
    let hooks = settings["hooks"]["PreToolUse"].to_string();
    assert!(hooks.contains("flotilla-read-only.sh"), "{hooks}");
    let (_, patterns) = sh(
        &container,
        "cat ~/.claude/hooks/flotilla-read-only.patterns",
    );
    assert_eq!(patterns, "allow */scratch/*\nblock *.py\n");
    let (blocked, _) = sh(
        &container,
        r#"echo '{"tool_input":{"file_path":"/home/developer/a.py"}}' | ~/.claude/hooks/flotilla-read-only.sh"#,
    );
    assert!(!blocked, "the hook let a blocked path through");
    let (allowed, _) = sh(
        &container,
        r#"echo '{"tool_input":{"file_path":"/home/developer/scratch/a.py"}}' | ~/.claude/hooks/flotilla-read-only.sh"#,
    );
    assert!(allowed, "the hook blocked an allowed path");

    // Same agent: id, port, data. Patterns kept when only `enabled` is sent.
    let after: Value = app.get_agent(&app.admin, &name).await.json().await.unwrap();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["port"], before["port"]);
    assert_eq!(after["read_only_enabled"], true);

    let (status, body) = put(&app, &app.admin, &path, json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["container_recreated"], true);
    assert_eq!(body["config"]["blocked_patterns"], json!(["*.py"]));
    assert!(sh(&container, "echo x > /home/developer/f").0);
    assert_eq!(sh(&container, "cat ~/notes.txt ~/f").1, "kept\nx\n");
    let settings = json_file(&container, "~/.claude/settings.json");
    assert!(
        !settings["hooks"]["PreToolUse"]
            .to_string()
            .contains("flotilla")
    );
}

#[tokio::test]
async fn read_only_on_a_stopped_agent_applies_at_its_next_start() {
    let app = TestApp::spawn().await;
    let name = unique("rostop");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    app.stop_agent(&app.admin, &name).await;
    let (status, body) = put(
        &app,
        &app.admin,
        &format!("/api/agents/{name}/read-only"),
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["container_recreated"], false);
    assert_eq!(body["applies_on_next_start"], true);
    assert_eq!(app.status_of(&app.admin, &name).await, "stopped");
    assert_eq!(
        app.start_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    assert!(!sh(&container, "echo x > /home/developer/f").0);
}

#[tokio::test]
async fn settings_are_for_owners_and_never_on_system_agents() {
    let app = TestApp::spawn().await;
    let name = unique("owned");
    app.create_small(&app.admin, &name).await;
    let other = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    for (setting, body) in [
        ("autonomy", json!({"enabled": true})),
        ("read-only", json!({"enabled": true})),
        ("timeout", json!({"execution_timeout_seconds": 600})),
    ] {
        let path = format!("/api/agents/{name}/{setting}");
        assert_eq!(app.get(&other, &path).await.status(), StatusCode::NOT_FOUND);
        let (status, _) = put(&app, &other, &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{setting}");
    }

    let system = unique("sys");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": system, "system": true,
                   "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = put(
        &app,
        &app.admin,
        &format!("/api/agents/{system}/autonomy"),
        json!({"enabled": true}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        get(&app, &format!("/api/agents/{system}/autonomy")).await["autonomy_enabled"],
        false
    );
}
