//! Restart durability: the real `flotilla serve` binary on an on-disk store, killed with SIGKILL
//! and started again on the same data dir.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{DockerCleanup, ServerProcess, docker_state, unique};

fn by_name(list: &Value) -> Vec<(String, String, u64, String)> {
    let mut out: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["owner"].as_str().unwrap().to_string(),
                a["port"].as_u64().unwrap(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn agents_owners_ports_statuses_and_tokens_survive_a_kill_9() {
    let instance = unique("durable");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&instance, data.path()).await;
    let api = server.api.clone();

    let admin = api.admin_token().await;
    let email = format!("{}@example.com", unique("owner"));
    let user = api.user_token(&admin, &email).await;
    let mine = unique("mine");
    let theirs = unique("theirs");
    let outside = unique("outside");
    api.create_small(&admin, &mine).await;
    api.create_small(&user, &theirs).await;
    api.create_small(&admin, &outside).await;
    assert_eq!(
        api.stop_agent(&user, &theirs).await.status(),
        StatusCode::OK
    );
    let logged_out = api.admin_token().await;
    assert_eq!(api.logout(&logged_out).await.status(), StatusCode::OK);
    let before: Value = api.list_agents(&admin).await.json().await.unwrap();

    server.kill9();
    // While flotilla is down, one agent is stopped behind its back.
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "1", &format!("agent-{outside}")])
        .output()
        .unwrap();
    assert!(stopped.status.success());

    let server = ServerProcess::start(&instance, data.path()).await;
    let api = server.api.clone();
    // Old tokens still work: the signing secret is persisted in the data dir.
    let after_response = api.list_agents(&admin).await;
    assert_eq!(after_response.status(), StatusCode::OK);
    let after: Value = after_response.json().await.unwrap();

    let mut expected = by_name(&before);
    for agent in &mut expected {
        if agent.0 == outside {
            agent.3 = "stopped".into();
        }
    }
    assert_eq!(by_name(&after), expected);
    for (name, _, _, status) in by_name(&after) {
        let docker = docker_state(&format!("agent-{name}")).unwrap();
        assert_eq!(
            status == "running",
            docker == "running",
            "{name}: {status} vs {docker}"
        );
    }

    // Ownership survived: the user still sees only their own agent.
    let theirs_list: Value = api.list_agents(&user).await.json().await.unwrap();
    let names: Vec<&str> = theirs_list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![theirs.as_str()]);

    // A logged-out token stays revoked.
    assert_eq!(
        api.list_agents(&logged_out).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // And the fleet is fully operational: the stopped agents start, one deletes cleanly.
    assert_eq!(
        api.start_agent(&admin, &outside).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.start_agent(&user, &theirs).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.delete_agent(&admin, &mine).await.status(),
        StatusCode::OK
    );
    assert_eq!(docker_state(&format!("agent-{mine}")), None);
}

#[tokio::test]
async fn containers_of_the_instance_without_an_agent_are_reported_to_admins_only() {
    let instance = unique("orphans");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    // Make sure the image exists (a first server start builds it), then plant a stray container.
    drop(ServerProcess::start(&instance, data.path()).await);
    let stray = unique("stray");
    let created = std::process::Command::new("docker")
        .args(["create", "--name", &stray, "--label"])
        .arg(format!("flotilla.instance={instance}"))
        .args(["flotilla-agent:local"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");

    let server = ServerProcess::start(&instance, data.path()).await;
    let admin = server.api.admin_token().await;
    let orphans: Value = server
        .api
        .get(&admin, "/api/admin/orphans")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = orphans
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![stray.as_str()]);
    // Reported, not removed.
    assert!(docker_state(&stray).is_some());
    let user = server
        .api
        .user_token(&admin, &format!("{}@example.com", unique("u")))
        .await;
    assert_eq!(
        server.api.get(&user, "/api/admin/orphans").await.status(),
        StatusCode::FORBIDDEN
    );
}
