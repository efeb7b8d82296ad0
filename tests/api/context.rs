//! Context stats and autonomy status over real HTTP and real Docker: transcripts planted in an
//! agent's state volume the way Claude Code and Gemini CLI write them, read back through the
//! archive API (also from a stopped agent).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Api, TestApp, eventually, unique};

impl Api {
    pub async fn context_stats(&self, token: &str) -> reqwest::Response {
        self.get(token, "/api/agents/context-stats").await
    }

    pub async fn autonomy_status(&self, token: &str) -> reqwest::Response {
        self.get(token, "/api/agents/autonomy-status").await
    }
}

/// Run `script` in the agent's container as its user, with `input` on stdin.
fn sh(name: &str, script: &str, input: &str) {
    let mut child = Command::new("docker")
        .args(["exec", "-i", &format!("agent-{name}"), "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PROJECT: &str = "/home/developer/.claude/projects/-home-developer";

/// One line of a Claude Code transcript.
fn claude_line(kind: &str, uuid: &str, extra: Value) -> String {
    let mut line = json!({
        "parentUuid": null, "isSidechain": false, "userType": "external",
        "cwd": "/home/developer", "sessionId": "2b9f6c1e-8d4a-4f3e-9a51-0c7d2e4b1a90",
        "version": "2.0.14", "gitBranch": "main", "type": kind, "uuid": uuid,
        "timestamp": "2025-10-10T09:00:00.000Z",
    });
    for (k, v) in extra.as_object().unwrap() {
        line[k] = v.clone();
    }
    format!("{line}\n")
}

fn assistant(uuid: &str, input: u64, creation: u64, read: u64, sidechain: bool) -> String {
    claude_line(
        "assistant",
        uuid,
        json!({
            "isSidechain": sidechain,
            "requestId": format!("req_{uuid}"),
            "message": {
                "id": format!("msg_{uuid}"), "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "Done: the parser now streams."}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {
                    "input_tokens": input, "cache_creation_input_tokens": creation,
                    "cache_read_input_tokens": read, "output_tokens": 245,
                    "service_tier": "standard",
                    "cache_creation": {"ephemeral_5m_input_tokens": creation, "ephemeral_1h_input_tokens": 0}
                }
            }
        }),
    )
}

/// A realistic session: a summary, a prompt, a tool round trip, a sub-agent's sidechain
/// answer (not the main context), and the final answer: 6 + 412 + 18 993 = 19 411 tokens.
fn claude_session() -> String {
    let mut text = String::from(
        "{\"type\":\"summary\",\"summary\":\"Refactor the parser\",\"leafUuid\":\"a5\"}\n",
    );
    text += &claude_line(
        "user",
        "a1",
        json!({"message": {"role": "user", "content": "Refactor src/parser.rs to stream"}}),
    );
    text += &claude_line(
        "assistant",
        "a2",
        json!({"message": {
            "id": "msg_a2", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "tool_use", "id": "toolu_01", "name": "Read",
                         "input": {"file_path": "/home/developer/src/parser.rs"}}],
            "usage": {"input_tokens": 4, "cache_creation_input_tokens": 5123,
                      "cache_read_input_tokens": 13870, "output_tokens": 131}
        }}),
    );
    text += &claude_line(
        "user",
        "a3",
        json!({"message": {"role": "user", "content": [
            {"tool_use_id": "toolu_01", "type": "tool_result", "content": "pub fn parse() {}"}
        ]}}),
    );
    text += &assistant("s1", 900, 0, 0, true);
    text += &assistant("a4", 6, 412, 18_993, false);
    text
}

/// Write `content` as the transcript `file` of the agent's Claude Code project.
fn plant_claude(name: &str, file: &str, content: &str) {
    sh(
        name,
        &format!("mkdir -p {PROJECT} && cat > {PROJECT}/{file}"),
        content,
    );
}

/// The agent's entry in the caller's context-stats.
async fn entry(app: &TestApp, token: &str, name: &str) -> Option<Value> {
    let response = app.context_stats(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
}

/// Wait until the agent's entry satisfies `check`; return it.
async fn wait_for(app: &TestApp, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let last = Mutex::new(Value::Null);
    eventually(Duration::from_secs(30), what, || async {
        let found = entry(app, &app.admin, name).await.unwrap_or(Value::Null);
        let ok = check(&found);
        *last.lock().unwrap() = found;
        ok
    })
    .await;
    last.into_inner().unwrap()
}

#[tokio::test]
async fn a_claude_transcript_gives_the_context_in_use_and_follows_its_changes() {
    let app = TestApp::spawn().await;
    let name = unique("ctx");
    app.create_small(&app.admin, &name).await;
    plant_claude(&name, "2b9f6c1e.jsonl", &claude_session());

    let found = wait_for(&app, &name, "the planted context", |e| {
        e["contextUsed"] == 19_411
    })
    .await;
    assert_eq!(found["status"], "running", "{found}");
    assert_eq!(found["activityState"], "active", "{found}");
    assert_eq!(found["contextMax"], 200_000, "{found}");
    assert_eq!(found["contextPercent"], 9.7, "{found}");
    assert!(
        found["lastActivityTime"].as_str().unwrap().ends_with('Z'),
        "{found}"
    );

    // The session goes on: the newest answer counts.
    sh(
        &name,
        &format!("cat >> {PROJECT}/2b9f6c1e.jsonl"),
        &assistant("a5", 10, 2_000, 48_000, false),
    );
    wait_for(&app, &name, "the grown transcript", |e| {
        e["contextUsed"] == 50_010
    })
    .await;

    // A new session file: the newest transcript wins.
    plant_claude(
        &name,
        "7c0d9e2f.jsonl",
        &assistant("b1", 3, 100, 2_897, false),
    );
    let found = wait_for(&app, &name, "the new session", |e| {
        e["contextUsed"] == 3_000
    })
    .await;
    assert_eq!(found["contextPercent"], 1.5, "{found}");

    // Stopped: offline, and still read from its (stopped) container: a session copied in
    // while it is stopped shows up.
    assert_eq!(
        app.stop_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let found = entry(&app, &app.admin, &name).await.unwrap();
    assert_eq!(found["status"], "stopped", "{found}");
    assert_eq!(found["activityState"], "offline", "{found}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("9a8b7c6d.jsonl");
    std::fs::write(&file, assistant("c1", 1, 1, 7_998, false)).unwrap();
    let copied = Command::new("docker")
        .arg("cp")
        .arg(&file)
        .arg(format!("agent-{name}:{PROJECT}/9a8b7c6d.jsonl"))
        .status()
        .unwrap();
    assert!(copied.success());
    let found = wait_for(&app, &name, "the session copied in while stopped", |e| {
        e["contextUsed"] == 8_000
    })
    .await;
    assert_eq!(found["activityState"], "offline", "{found}");
}

#[tokio::test]
async fn an_old_transcript_is_idle_and_a_1m_model_has_a_1m_window() {
    let app = TestApp::spawn().await;
    let name = unique("idle");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": name, "runtime_model": "sonnet[1m]",
                   "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    plant_claude(
        &name,
        "old.jsonl",
        &assistant("a1", 1, 49_999, 200_000, false),
    );
    sh(
        &name,
        &format!("touch -t 202001010000 {PROJECT}/old.jsonl"),
        "",
    );

    let found = wait_for(&app, &name, "the planted context", |e| {
        e["contextUsed"] == 250_000
    })
    .await;
    assert_eq!(found["activityState"], "idle", "{found}");
    assert_eq!(found["contextMax"], 1_000_000, "{found}");
    assert_eq!(found["contextPercent"], 25.0, "{found}");
    assert!(
        found["lastActivityTime"]
            .as_str()
            .unwrap()
            .starts_with("2020-01-01T00:00"),
        "{found}"
    );
}

#[tokio::test]
async fn a_gemini_session_gives_the_prompt_tokens_of_the_last_answer() {
    let app = TestApp::spawn().await;
    let name = unique("gctx");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": name, "runtime": "gemini-cli",
                   "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = [
        json!({"sessionId": "0f7d2c1a-1111-2222-3333-444455556666", "projectHash": "9c1e",
               "startTime": "2025-12-01T10:00:00.000Z", "lastUpdated": "2025-12-01T10:00:00.000Z"}),
        json!({"id": "u1", "timestamp": "2025-12-01T10:00:01.000Z", "type": "user",
               "content": [{"text": "Summarise README.md"}]}),
        json!({"id": "g1", "timestamp": "2025-12-01T10:00:03.000Z", "type": "gemini",
               "content": "README.md describes a fleet manager.", "thoughts": [],
               "tokens": {"input": 9500, "output": 120, "cached": 8000, "thoughts": 0, "tool": 0, "total": 9620},
               "model": "gemini-2.5-pro"}),
        json!({"$set": {"lastUpdated": "2025-12-01T10:00:06.000Z"}}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    let chats = "/home/developer/.gemini/tmp/9c1e/chats";
    sh(
        &name,
        &format!("mkdir -p {chats} && cat > {chats}/session-2025-12-01T10-00-0f7d2c1a.jsonl"),
        &session,
    );

    let found = wait_for(&app, &name, "the planted context", |e| {
        e["contextUsed"] == 9_500
    })
    .await;
    assert_eq!(found["contextMax"], 1_048_576, "{found}");
    assert_eq!(found["contextPercent"], 0.9, "{found}");
    assert_eq!(found["activityState"], "active", "{found}");
}

#[tokio::test]
async fn agents_without_transcripts_show_zeros_and_others_agents_are_not_listed() {
    let app = TestApp::spawn().await;
    let ana = app
        .user_token(&app.admin, &format!("{}@example.com", unique("ana")))
        .await;
    let bo = app
        .user_token(&app.admin, &format!("{}@example.com", unique("bo")))
        .await;
    let anas = unique("anas");
    let bos = unique("bos");
    app.create_small(&ana, &anas).await;
    app.create_small(&bo, &bos).await;

    let mine = entry(&app, &ana, &anas).await.expect("ana sees her agent");
    assert_eq!(mine["contextUsed"], 0, "{mine}");
    assert_eq!(mine["contextPercent"], 0.0, "{mine}");
    assert_eq!(mine["contextMax"], 200_000, "{mine}");
    assert_eq!(mine["activityState"], "idle", "{mine}");
    assert_eq!(mine["lastActivityTime"], Value::Null, "{mine}");
    assert!(
        entry(&app, &ana, &bos).await.is_none(),
        "ana must not see bo's agent"
    );
    assert!(
        entry(&app, &bo, &anas).await.is_none(),
        "bo must not see ana's agent"
    );
    assert!(entry(&app, &app.admin, &anas).await.is_some());
    assert!(entry(&app, &app.admin, &bos).await.is_some());

    let anonymous = app
        .client
        .get(app.url("/api/agents/context-stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn autonomy_status_maps_visible_non_system_agents() {
    let app = TestApp::spawn().await;
    let ana = app
        .user_token(&app.admin, &format!("{}@example.com", unique("ana")))
        .await;
    let autonomous = unique("auto");
    let manual = unique("manual");
    let system = unique("sys");
    app.create_small(&ana, &autonomous).await;
    app.create_small(&ana, &manual).await;
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": system, "system": true,
                   "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app
        .put(
            &ana,
            &format!("/api/agents/{autonomous}/autonomy"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let response = app.autonomy_status(&ana).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            autonomous.clone(): {"autonomy_enabled": true},
            manual.clone(): {"autonomy_enabled": false},
        })
    );

    let body: Value = app.autonomy_status(&app.admin).await.json().await.unwrap();
    assert_eq!(
        body[&autonomous],
        json!({"autonomy_enabled": true}),
        "{body}"
    );
    assert!(
        body.get(&system).is_none(),
        "system agents are left out: {body}"
    );

    // Still an agent-name route for real agents.
    assert_eq!(
        app.get_agent(&ana, &autonomous).await.status(),
        StatusCode::OK
    );
}
