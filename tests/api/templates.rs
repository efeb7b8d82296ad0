//! Templates, agent info.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, unique};

fn exec(container: &str, script: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn templates_are_listed_with_their_metadata() {
    let app = TestApp::spawn().await;
    let response = app.get(&app.admin, "/api/templates").await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = response.json().await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["code-reviewer", "research-assistant"]);
    let research = &list[1];
    assert_eq!(research["display_name"], "Research Assistant");
    assert_eq!(research["type"], "research-assistant");
    assert_eq!(research["resources"], json!({"cpu": "1", "memory": "2g"}));
    assert!(research["capabilities"].as_array().unwrap().len() >= 3);
    assert!(
        research["files"]
            .as_array()
            .unwrap()
            .contains(&json!("research/sources.md"))
    );
}

#[tokio::test]
async fn create_from_a_template_seeds_the_workspace_and_applies_its_defaults() {
    let app = TestApp::spawn().await;
    let name = unique("research");
    let response = app
        .create_agent(
            &app.admin,
            // Explicit fields win: memory and runtime are overridden, cpu comes from the template.
            json!({"name": name, "template": "research-assistant",
                   "runtime": "gemini-cli", "resources": {"memory": "256m"}}),
        )
        .await;
    let status = response.status();
    let agent: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{agent}");
    assert_eq!(agent["template"], "research-assistant");
    assert_eq!(agent["type"], "research-assistant");
    assert_eq!(agent["runtime"], "gemini-cli");
    assert_eq!(agent["runtime_model"], "sonnet-4.5");
    assert_eq!(agent["resources"], json!({"cpu": "1", "memory": "256m"}));
    assert_eq!(agent["tags"], json!(["research"]));

    let container = format!("agent-{name}");
    // Template files, owned by developer, and the template's instructions in the runtime's file.
    assert_eq!(
        exec(
            &container,
            "stat -c '%u %n' research/sources.md research/briefs"
        ),
        "1000 research/sources.md\n1000 research/briefs\n"
    );
    assert!(exec(&container, "cat research/sources.md").starts_with("# Sources"));
    assert!(exec(&container, "cat GEMINI.md").starts_with("# Research Assistant"));
    // The folder is writable by the agent.
    assert_eq!(
        exec(&container, "touch research/briefs/new.md && echo ok"),
        "ok\n"
    );

    let info: Value = app
        .get(&app.admin, &format!("/api/agents/{name}/info"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["agent_name"], name);
    assert_eq!(info["template"], "research-assistant");
    assert_eq!(info["display_name"], "Research Assistant");
    assert_eq!(info["runtime"], "gemini-cli");
    assert_eq!(info["runtime_model"], "sonnet-4.5");
    assert_eq!(info["resources"]["memory"], "256m");
    assert_eq!(info["instructions_file"], "GEMINI.md");
    assert_eq!(info["metadata"]["author"], "flotilla");
    assert!(info["capabilities"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn explicit_instructions_win_over_the_templates() {
    let app = TestApp::spawn().await;
    let name = unique("reviewer");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": name, "template": "code-reviewer", "custom_instructions": "Only nits.",
                   "resources": {"cpu": "0.25", "memory": "128m"}, "tags": ["mine"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let agent: Value = response.json().await.unwrap();
    assert_eq!(agent["tags"], json!(["mine"]));
    let container = format!("agent-{name}");
    assert_eq!(exec(&container, "cat CLAUDE.md"), "Only nits.");
    assert!(exec(&container, "cat reviews/CHECKLIST.md").starts_with("# Review checklist"));
}

#[tokio::test]
async fn an_unknown_template_is_422_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": unique("x"), "template": "no-such-template"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("template"),
        "{body}"
    );
    assert_eq!(app.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn info_of_an_agent_without_a_template_is_still_useful() {
    let app = TestApp::spawn().await;
    let name = unique("plain");
    app.create_small(&app.admin, &name).await;
    let response = app
        .get(&app.admin, &format!("/api/agents/{name}/info"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["template"], Value::Null);
    assert_eq!(info["display_name"], name);
    assert_eq!(info["type"], "business-assistant");
    assert_eq!(info["runtime"], "claude-code");
    assert_eq!(info["instructions_file"], "CLAUDE.md");
    assert_eq!(info["resources"], json!({"cpu": "0.25", "memory": "128m"}));
    assert!(
        info["description"]
            .as_str()
            .unwrap()
            .contains("claude-code")
    );
    // Invisible to others.
    let other = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    assert_eq!(
        app.get(&other, &format!("/api/agents/{name}/info"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
