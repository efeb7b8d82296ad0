//! Agent CRUD and lifecycle over real HTTP and real Docker.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, docker_state, eventually, inspect, unique};

async fn body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert!(body["detail"].is_string(), "error without detail: {body}");
}

#[tokio::test]
async fn create_starts_an_agent_with_the_reference_shape() {
    let app = TestApp::spawn().await;
    let name = unique("shape");
    let (status, agent) = body(
        app.create_agent(
            &app.admin,
            json!({
                "name": name,
                "runtime": "gemini-cli",
                "runtime_model": "gemini-2.5-pro",
                "resources": {"cpu": "0.5", "memory": "256m"},
                "custom_instructions": "Be brief.",
                "github_repo": "Org/repo",
                "tags": ["Prod", "research", "prod"]
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{agent}");
    assert_eq!(agent["name"], name);
    assert_eq!(agent["type"], "business-assistant");
    assert_eq!(agent["status"], "running");
    assert_eq!(agent["runtime"], "gemini-cli");
    assert_eq!(agent["runtime_model"], "gemini-2.5-pro");
    assert_eq!(agent["resources"], json!({"cpu": "0.5", "memory": "256m"}));
    assert_eq!(agent["tags"], json!(["prod", "research"]));
    assert_eq!(agent["owner"], "admin");
    assert_eq!(agent["is_owner"], true);
    assert_eq!(agent["is_shared"], false);
    assert_eq!(agent["is_system"], false);
    assert_eq!(agent["can_delete"], true);
    assert_eq!(agent["shares"], json!([]));
    assert!(agent["port"].as_u64().unwrap() >= 2222);
    assert!(agent["created"].as_str().unwrap().ends_with('Z'));
    assert!(agent["container_id"].is_string());

    // The runtime's instructions file is in the workspace, owned by developer.
    let out = std::process::Command::new("docker")
        .args(["exec", &format!("agent-{name}"), "sh", "-c"])
        .arg("cat ~/GEMINI.md; stat -c ' %u' ~/GEMINI.md; echo \" $AGENT_NAME $AGENT_RUNTIME $AGENT_RUNTIME_MODEL\"")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.trim(),
        format!("Be brief. 1000\n {name} gemini-cli gemini-2.5-pro")
    );

    let (status, list) = body(app.list_agents(&app.admin).await).await;
    assert_eq!(status, StatusCode::OK);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    for field in [
        "name",
        "type",
        "status",
        "port",
        "created",
        "resources",
        "container_id",
        "template",
        "runtime",
        "owner",
        "is_owner",
        "is_shared",
        "is_system",
        "autonomy_enabled",
        "read_only_enabled",
        "github_repo",
        "avatar_url",
        "tags",
    ] {
        assert!(listed[0].get(field).is_some(), "list item lacks {field}");
    }
}

#[tokio::test]
async fn docker_inspect_confirms_what_create_promises() {
    let app = TestApp::spawn().await;
    let name = unique("inspect");
    let agent = app
        .create_agent(
            &app.admin,
            json!({"name": name, "resources": {"cpu": "0.5", "memory": "256m"}}),
        )
        .await;
    assert_eq!(agent.status(), StatusCode::OK);
    let agent: Value = agent.json().await.unwrap();
    let c = inspect(&format!("agent-{name}"));
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["flotilla.instance"], app.instance);
    assert_eq!(labels["flotilla.agent-id"], agent["id"]);
    assert_eq!(labels["flotilla.agent-name"], name);
    assert_eq!(labels["flotilla.runtime"], "claude-code");
    assert_eq!(labels["flotilla.type"], "business-assistant");
    assert_eq!(labels["flotilla.ssh-port"], agent["port"].to_string());

    let host = &c["HostConfig"];
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["Memory"], 256 * 1024 * 1024);
    assert_eq!(host["MemorySwap"], 256 * 1024 * 1024);
    assert!(host["PidsLimit"].as_i64().unwrap() > 0);
    assert_eq!(host["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(host["Privileged"], false);
    assert_eq!(host["Init"], true);
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert!(host["CapAdd"].is_null());
    assert_ne!(host["NetworkMode"], "host");
    assert!(host["Binds"].is_null(), "no bind mounts: {}", host["Binds"]);
    assert!(
        host["SecurityOpt"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_str().unwrap().starts_with("no-new-privileges"))
    );
    assert_eq!(c["Config"]["User"], "1000:1000");

    // Exactly two named volumes, keyed by the agent id: the workspace at home, and the
    // runtime's state directory inside it.
    let id = agent["id"].as_str().unwrap();
    let mut mounts: Vec<(String, String, String, bool)> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Type"].as_str().unwrap().to_string(),
                m["Destination"].as_str().unwrap().to_string(),
                m["Name"].as_str().unwrap_or("").to_string(),
                m["RW"].as_bool().unwrap(),
            )
        })
        .collect();
    mounts.sort();
    assert_eq!(
        mounts,
        vec![
            (
                "volume".to_string(),
                "/home/developer".to_string(),
                format!("flotilla-{id}-workspace"),
                true
            ),
            (
                "volume".to_string(),
                "/home/developer/.claude".to_string(),
                format!("flotilla-{id}-state"),
                true
            ),
        ]
    );
}

#[tokio::test]
async fn stop_start_are_idempotent_and_match_docker() {
    let app = TestApp::spawn().await;
    let name = unique("life");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");

    for _ in 0..2 {
        let (status, msg) = body(app.stop_agent(&app.admin, &name).await).await;
        assert_eq!(status, StatusCode::OK, "{msg}");
        assert_eq!(msg["message"], format!("Agent {name} stopped"));
        assert_eq!(app.status_of(&app.admin, &name).await, "stopped");
        assert_eq!(docker_state(&container).as_deref(), Some("exited"));
    }
    let (status, started) = body(app.start_agent(&app.admin, &name).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(started["message"], format!("Agent {name} started"));
    assert_eq!(started["credentials_injection"], "skipped");
    assert_eq!(started["started"], true);
    let (_, again) = body(app.start_agent(&app.admin, &name).await).await;
    assert_eq!(again["started"], false);
    assert_eq!(app.status_of(&app.admin, &name).await, "running");
    assert_eq!(docker_state(&container).as_deref(), Some("running"));
}

#[tokio::test]
async fn start_unpauses_an_agent_paused_outside_flotilla() {
    let app = TestApp::spawn().await;
    let name = unique("paused");
    app.create_small(&app.admin, &name).await;
    let container = format!("agent-{name}");
    let paused = std::process::Command::new("docker")
        .args(["pause", &container])
        .output()
        .unwrap();
    assert!(paused.status.success());
    eventually(Duration::from_secs(10), "the pause to be seen", || async {
        app.status_of(&app.admin, &name).await == "paused"
    })
    .await;
    let (status, started) = body(app.start_agent(&app.admin, &name).await).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["started"], true);
    assert_eq!(docker_state(&container).as_deref(), Some("running"));
    assert_eq!(app.status_of(&app.admin, &name).await, "running");
}

#[tokio::test]
async fn start_recreates_a_container_removed_outside_flotilla_keeping_data() {
    let app = TestApp::spawn().await;
    let name = unique("missing");
    app.create_agent(
        &app.admin,
        json!({"name": name, "custom_instructions": "keep me",
               "resources": {"cpu": "0.25", "memory": "128m"}}),
    )
    .await;
    let container = format!("agent-{name}");
    let removed = std::process::Command::new("docker")
        .args(["rm", "-f", &container])
        .output()
        .unwrap();
    assert!(removed.status.success());
    let (status, started) = body(app.start_agent(&app.admin, &name).await).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(docker_state(&container).as_deref(), Some("running"));
    let out = std::process::Command::new("docker")
        .args(["exec", &container, "cat", "/home/developer/CLAUDE.md"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "keep me");
}

#[tokio::test]
async fn rename_moves_the_container_and_keeps_the_data() {
    let app = TestApp::spawn().await;
    let old = unique("old");
    let new = unique("new");
    let created = app.create_small(&app.admin, &old).await;
    let write = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("agent-{old}"),
            "sh",
            "-c",
            "echo kept > ~/notes.txt",
        ])
        .status()
        .unwrap();
    assert!(write.success());

    // Running: the container is renamed at once.
    let (status, renamed) = body(app.rename_agent(&app.admin, &old, &new).await).await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["new_name"], new);
    assert_error_status(app.get_agent(&app.admin, &old).await, StatusCode::NOT_FOUND).await;
    let (_, agent) = body(app.get_agent(&app.admin, &new).await).await;
    assert_eq!(agent["id"], created["id"]);
    assert_eq!(agent["port"], created["port"]);
    assert_eq!(agent["status"], "running");
    assert_eq!(
        docker_state(&format!("agent-{new}")).as_deref(),
        Some("running")
    );
    assert_eq!(docker_state(&format!("agent-{old}")), None);

    // Stopped: the container is rebuilt so its labels and environment carry the new name.
    app.stop_agent(&app.admin, &new).await;
    let newer = unique("newer");
    let (status, _) = body(app.rename_agent(&app.admin, &new, &newer).await).await;
    assert_eq!(status, StatusCode::OK);
    let c = inspect(&format!("agent-{newer}"));
    assert_eq!(c["Config"]["Labels"]["flotilla.agent-name"], newer);
    assert_eq!(
        app.start_agent(&app.admin, &newer).await.status(),
        StatusCode::OK
    );
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("agent-{newer}"),
            "sh",
            "-c",
            "cat ~/notes.txt; echo $AGENT_NAME",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("kept\n{newer}\n")
    );
}

async fn assert_error_status(response: reqwest::Response, expected: StatusCode) {
    let (status, json) = body(response).await;
    assert_error(status, &json, expected);
}

#[tokio::test]
async fn rename_to_a_taken_or_invalid_name_changes_nothing() {
    let app = TestApp::spawn().await;
    let a = unique("a");
    let b = unique("b");
    app.create_small(&app.admin, &a).await;
    app.create_small(&app.admin, &b).await;
    assert_error_status(
        app.rename_agent(&app.admin, &a, &b).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_error_status(
        app.rename_agent(&app.admin, &a, "Not Valid").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_error_status(
        app.rename_agent(&app.admin, &a, "context-stats").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(app.get_agent(&app.admin, &a).await.status(), StatusCode::OK);
    assert_eq!(
        docker_state(&format!("agent-{a}")).as_deref(),
        Some("running")
    );
    assert_error_status(
        app.rename_agent(&app.admin, &unique("ghost"), &unique("x"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn delete_removes_container_volumes_and_frees_the_port() {
    let app = TestApp::spawn().await;
    let name = unique("del");
    let first = app.create_small(&app.admin, &name).await;
    let (status, msg) = body(app.delete_agent(&app.admin, &name).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(msg["message"], format!("Agent {name} deleted"));
    assert_eq!(app.docker_objects(), (vec![], vec![]));
    assert_error_status(
        app.get_agent(&app.admin, &name).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error_status(
        app.delete_agent(&app.admin, &name).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The name and the port lease are free again.
    let second = app.create_small(&app.admin, &name).await;
    assert_eq!(second["port"], first["port"]);
    assert_ne!(second["id"], first["id"]);
}

#[tokio::test]
async fn system_agents_cannot_be_deleted_or_renamed() {
    let app = TestApp::spawn().await;
    let name = unique("sys");
    let (status, agent) = body(
        app.create_agent(
            &app.admin,
            json!({"name": name, "system": true, "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{agent}");
    assert_eq!(agent["is_system"], true);
    assert_eq!(agent["can_delete"], false);
    assert_error_status(
        app.delete_agent(&app.admin, &name).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_error_status(
        app.rename_agent(&app.admin, &name, &unique("x")).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // Still there, still running; and start/stop work.
    assert_eq!(
        app.stop_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    // Only admins create system agents.
    let user = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    assert_error_status(
        app.create_agent(&user, json!({"name": unique("sys"), "system": true}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[tokio::test]
async fn invalid_create_requests_are_422_and_leave_nothing() {
    let app = TestApp::spawn().await;
    let cases = [
        json!({"name": ""}),
        json!({"name": "UPPER"}),
        json!({"name": "has space"}),
        json!({"name": "-dash"}),
        json!({"name": "a".repeat(64)}),
        json!({"name": "context-stats"}),
        json!({"name": "autonomy-status"}),
        json!({"name": "ok-name", "runtime": "vim"}),
        json!({"name": "ok-name", "resources": {"cpu": "lots"}}),
        json!({"name": "ok-name", "resources": {"cpu": "512"}}),
        json!({"name": "ok-name", "resources": {"memory": "1k"}}),
        json!({"name": "ok-name", "tags": ["bad tag"]}),
        json!({"name": "ok-name", "github_repo": "no-slash"}),
        json!({"name": "ok-name", "image": "alpine"}),
        json!({"name": "ok-name", "type": "a/b"}),
        json!({"name": 7}),
        json!({}),
    ];
    for case in cases {
        let (status, json) = body(app.create_agent(&app.admin, case.clone()).await).await;
        assert_error(status, &json, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            json["detail"].as_str().unwrap().contains(':'),
            "detail should name the field: {json} for {case}"
        );
    }
    let malformed = app
        .api
        .client
        .post(app.url("/api/agents"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error_status(malformed, StatusCode::BAD_REQUEST).await;
    let (_, list) = body(app.list_agents(&app.admin).await).await;
    assert_eq!(list, json!([]));
    assert_eq!(app.docker_objects(), (vec![], vec![]));
}

#[tokio::test]
async fn list_filters_by_any_of_the_tags() {
    let app = TestApp::spawn().await;
    let prod = unique("prod");
    let staging = unique("staging");
    let untagged = unique("none");
    for (name, tags) in [
        (&prod, json!(["prod", "eu"])),
        (&staging, json!(["staging"])),
        (&untagged, json!([])),
    ] {
        let r = app
            .create_agent(
                &app.admin,
                json!({"name": name, "tags": tags, "resources": {"cpu": "0.25", "memory": "128m"}}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let names = |v: Value| -> HashSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = body(app.get(&app.admin, "/api/agents").await).await;
    assert_eq!(names(all).len(), 3);
    let (_, some) = body(app.get(&app.admin, "/api/agents?tags=PROD,staging").await).await;
    assert_eq!(names(some), HashSet::from([prod.clone(), staging.clone()]));
    let (_, one) = body(app.get(&app.admin, "/api/agents?tags=eu").await).await;
    assert_eq!(names(one), HashSet::from([prod]));
    let (_, none) = body(app.get(&app.admin, "/api/agents?tags=nope").await).await;
    assert_eq!(none, json!([]));
}

/// The list is served from a cache of serialised bodies between changes (src/list_cache.rs):
/// each kind of change must reach the next list at once, for every caller.
#[tokio::test]
async fn the_list_follows_every_change_at_once() {
    let app = TestApp::spawn().await;
    let friend_email = format!("{}@example.com", unique("friend"));
    let friend = app.user_token(&app.admin, &friend_email).await;
    let name = unique("cached");
    app.create_small(&app.admin, &name).await;

    // Each list is read twice: the second answer comes from the cache.
    async fn list(app: &TestApp, token: &str) -> Value {
        let (status, first) = body(app.list_agents(token).await).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let (_, second) = body(app.list_agents(token).await).await;
        assert_eq!(first, second);
        first
    }
    let one = |list: &Value| -> Value {
        let all = list.as_array().unwrap();
        assert_eq!(all.len(), 1, "{list}");
        all[0].clone()
    };

    assert_eq!(list(&app, &friend).await, json!([]));
    assert_eq!(one(&list(&app, &app.admin).await)["status"], "running");

    // A share: a change of access, not of the agent.
    let r = app
        .post(
            &app.admin,
            &format!("/api/agents/{name}/share"),
            Some(json!({ "email": friend_email })),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(one(&list(&app, &friend).await)["is_shared"], true);

    // A stop through the API, and a start made behind flotilla's back.
    assert_eq!(
        app.stop_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    assert_eq!(one(&list(&app, &friend).await)["status"], "stopped");
    assert!(
        std::process::Command::new("docker")
            .args(["start", &format!("agent-{name}")])
            .output()
            .unwrap()
            .status
            .success()
    );
    // The watcher publishes the outside start whenever Docker's event arrives, possibly
    // between two reads: poll with single reads, then read twice once it has arrived.
    eventually(
        Duration::from_secs(10),
        "the list shows the outside start",
        || async {
            let (_, now) = body(app.list_agents(&friend).await).await;
            one(&now)["status"] == "running"
        },
    )
    .await;
    assert_eq!(one(&list(&app, &friend).await)["status"], "running");

    // A rename; then an unshare; then a delete.
    let renamed = unique("recached");
    assert_eq!(
        app.rename_agent(&app.admin, &name, &renamed).await.status(),
        StatusCode::OK
    );
    assert_eq!(one(&list(&app, &friend).await)["name"], renamed);
    assert_eq!(one(&list(&app, &app.admin).await)["name"], renamed);
    let r = app
        .delete(
            &app.admin,
            &format!("/api/agents/{renamed}/share/{friend_email}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(list(&app, &friend).await, json!([]));
    assert_eq!(
        app.delete_agent(&app.admin, &renamed).await.status(),
        StatusCode::OK
    );
    assert_eq!(list(&app, &app.admin).await, json!([]));
}

#[tokio::test]
async fn two_concurrent_creates_of_one_name_give_one_agent_and_one_conflict() {
    let app = TestApp::spawn().await;
    let name = unique("twin");
    let spec = json!({"name": name, "resources": {"cpu": "0.25", "memory": "128m"}});
    let (a, b) = tokio::join!(
        app.create_agent(&app.admin, spec.clone()),
        app.create_agent(&app.admin, spec.clone())
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let (containers, volumes) = app.docker_objects();
    assert_eq!((containers.len(), volumes.len()), (1, 2));
}

#[tokio::test]
async fn twenty_concurrent_creates_get_unique_ports_and_match_docker() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..20).map(|i| unique(&format!("fleet{i}"))).collect();
    let responses = futures_util::future::join_all(names.iter().map(|n| {
        app.create_agent(
            &app.admin,
            json!({"name": n, "resources": {"cpu": "0.1", "memory": "64m"}}),
        )
    }))
    .await;
    let mut ports = HashSet::new();
    for response in responses {
        let (status, agent) = body(response).await;
        assert_eq!(status, StatusCode::OK, "{agent}");
        assert!(
            ports.insert(agent["port"].as_u64().unwrap()),
            "duplicate port"
        );
    }
    let (_, list) = body(app.list_agents(&app.admin).await).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 20);
    for agent in list {
        let name = agent["name"].as_str().unwrap();
        assert_eq!(agent["status"], "running");
        assert_eq!(
            docker_state(&format!("agent-{name}")).as_deref(),
            Some("running")
        );
    }
    let (containers, volumes) = app.docker_objects();
    assert_eq!((containers.len(), volumes.len()), (20, 40));
}

#[tokio::test]
async fn fifty_concurrent_mixed_operations_on_one_agent_end_consistent() {
    let app = TestApp::spawn().await;
    let name = unique("busy");
    app.create_small(&app.admin, &name).await;
    let requests = (0..50).map(|i| {
        let app = &app;
        let name = name.clone();
        async move {
            match i % 3 {
                0 => app.start_agent(&app.admin, &name).await,
                1 => app.stop_agent(&app.admin, &name).await,
                _ => app.get_agent(&app.admin, &name).await,
            }
        }
    });
    for response in futures_util::future::join_all(requests).await {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    let ours = app.status_of(&app.admin, &name).await;
    let docker = docker_state(&format!("agent-{name}")).unwrap();
    let expected = if docker == "running" {
        "running"
    } else {
        "stopped"
    };
    assert_eq!(ours, expected, "registry says {ours}, docker says {docker}");
    // One container, whatever the interleaving.
    assert_eq!(app.docker_objects().0.len(), 1);
}

#[tokio::test]
async fn a_create_that_fails_in_docker_leaves_nothing_behind() {
    let app =
        TestApp::spawn_with(|c| c.agent_image = "flotilla-test-no-such-image:none".into()).await;
    let name = unique("broken");
    for _ in 0..2 {
        let (status, json) = body(app.create_agent(&app.admin, json!({"name": name})).await).await;
        assert!(status.is_server_error(), "{status} {json}");
        assert!(json["detail"].is_string());
        // Nothing in Docker, nothing in the registry: the same name fails the same way again
        // (not 409), and the list is empty.
        assert_eq!(app.docker_objects(), (vec![], vec![]));
        let (_, list) = body(app.list_agents(&app.admin).await).await;
        assert_eq!(list, json!([]));
    }
}

#[tokio::test]
async fn operations_on_unknown_agents_are_404() {
    let app = TestApp::spawn().await;
    let ghost = unique("ghost");
    for response in [
        app.get_agent(&app.admin, &ghost).await,
        app.start_agent(&app.admin, &ghost).await,
        app.stop_agent(&app.admin, &ghost).await,
        app.delete_agent(&app.admin, &ghost).await,
    ] {
        assert_error_status(response, StatusCode::NOT_FOUND).await;
    }
}

#[tokio::test]
async fn a_deleted_agent_disappears_for_concurrent_readers() {
    let app = TestApp::spawn().await;
    let name = unique("gone");
    app.create_small(&app.admin, &name).await;
    let (deleted, _) = tokio::join!(app.delete_agent(&app.admin, &name), async {
        for _ in 0..10 {
            let status = app.get_agent(&app.admin, &name).await.status();
            assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND);
        }
    });
    assert_eq!(deleted.status(), StatusCode::OK);
    eventually(Duration::from_secs(5), "agent gone", || async {
        app.get_agent(&app.admin, &name).await.status() == StatusCode::NOT_FOUND
    })
    .await;
}

#[tokio::test]
async fn concurrent_deletes_give_one_200_and_404s() {
    let app = TestApp::spawn().await;
    let name = unique("twice");
    app.create_small(&app.admin, &name).await;
    let (a, b, c) = tokio::join!(
        app.delete_agent(&app.admin, &name),
        app.delete_agent(&app.admin, &name),
        app.start_agent(&app.admin, &name)
    );
    let mut deletes = [a.status(), b.status()];
    deletes.sort();
    assert_eq!(deletes, [StatusCode::OK, StatusCode::NOT_FOUND]);
    // The start either ran before the delete or found the agent gone; never a 5xx.
    assert!(
        c.status() == StatusCode::OK || c.status() == StatusCode::NOT_FOUND,
        "{}",
        c.status()
    );
    assert_eq!(app.docker_objects(), (vec![], vec![]));
}
