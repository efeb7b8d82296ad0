//! The container security profile of DESIGN.md, read back from `docker inspect` for every kind
//! of agent container flotilla makes: a plain agent, a producer publishing its shared folder, a
//! consumer mounting it (read-only), and a read-only agent that also consumes. Each must have:
//! no privileged mode, every capability dropped and none added, `no-new-privileges`, pids,
//! memory (= swap) and CPU limits, no Docker socket, no host network (nor host PID, IPC, UTS or
//! user namespace), no devices, no published ports, no binds at all — only named volumes of
//! this instance, of the agent itself or of a producer it may read — the unprivileged
//! `developer` user, and a writable root filesystem (by design: read-only mode is enforced by
//! mounting the workspace read-only, see `agent/spec.rs`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, inspect, unique};

/// `docker volume inspect`'s labels of a volume.
fn volume_labels(name: &str) -> Value {
    let out = std::process::Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .expect("docker volume inspect");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list[0]["Labels"].clone()
}

/// Assert the whole profile of `agent-{name}`; returns its mounts as (volume, target, rw).
fn assert_hardened(
    app: &TestApp,
    name: &str,
    allowed_owners: &[&str],
) -> Vec<(String, String, bool)> {
    let c = inspect(&format!("agent-{name}"));
    assert!(c.is_object(), "{name}: no container");
    let host = &c["HostConfig"];
    let ctx = |what: &str| format!("{name}: {what}: {host}");
    assert_eq!(host["Privileged"], false, "{}", ctx("privileged"));
    assert_eq!(host["CapDrop"], json!(["ALL"]), "{}", ctx("CapDrop"));
    assert!(
        host["CapAdd"].is_null() || host["CapAdd"] == json!([]),
        "{}",
        ctx("CapAdd")
    );
    let security: Vec<&str> = host["SecurityOpt"]
        .as_array()
        .map(|o| o.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        security
            .iter()
            .any(|o| *o == "no-new-privileges:true" || *o == "no-new-privileges"),
        "{}",
        ctx("no-new-privileges")
    );
    assert!(
        !security.iter().any(|o| o.contains("unconfined")),
        "{}",
        ctx("unconfined profile")
    );
    assert!(
        host["PidsLimit"].as_i64().unwrap_or(0) > 0,
        "{}",
        ctx("pids")
    );
    let memory = host["Memory"].as_i64().unwrap_or(0);
    assert!(memory > 0, "{}", ctx("memory"));
    assert_eq!(host["MemorySwap"].as_i64(), Some(memory), "{}", ctx("swap"));
    assert!(
        host["NanoCpus"].as_i64().unwrap_or(0) > 0,
        "{}",
        ctx("cpus")
    );
    assert_ne!(host["OomKillDisable"], true, "{}", ctx("oom kill"));
    let network = host["NetworkMode"].as_str().unwrap_or_default();
    assert!(
        network != "host" && !network.starts_with("container:"),
        "{}",
        ctx("network")
    );
    for mode in [
        "PidMode",
        "IpcMode",
        "UTSMode",
        "UsernsMode",
        "CgroupnsMode",
    ] {
        let value = host[mode].as_str().unwrap_or_default();
        assert!(
            value != "host" && !value.starts_with("container:"),
            "{}",
            ctx(mode)
        );
    }
    assert!(
        host["Devices"].is_null() || host["Devices"] == json!([]),
        "{}",
        ctx("devices")
    );
    assert!(
        host["PortBindings"].is_null() || host["PortBindings"] == json!({}),
        "{}",
        ctx("published ports")
    );
    assert_ne!(host["PublishAllPorts"], true, "{}", ctx("publish all"));
    assert!(
        host["Binds"].is_null() || host["Binds"] == json!([]),
        "{}",
        ctx("binds")
    );
    assert!(
        host["VolumesFrom"].is_null() || host["VolumesFrom"] == json!([]),
        "{}",
        ctx("volumes from")
    );
    assert_eq!(host["ReadonlyRootfs"], false, "{}", ctx("root filesystem"));
    assert_eq!(host["Init"], true, "{}", ctx("init"));
    assert_eq!(
        host["RestartPolicy"]["Name"],
        "unless-stopped",
        "{}",
        ctx("restart")
    );

    let config = &c["Config"];
    let user = config["User"].as_str().unwrap_or_default();
    assert_eq!(user, "1000:1000", "{name}: user");
    assert_eq!(config["Image"], "flotilla-agent:local", "{name}: image");
    assert!(
        config["ExposedPorts"].is_null() || config["ExposedPorts"] == json!({}),
        "{name}: exposed ports"
    );

    let mut mounts = Vec::new();
    for m in c["Mounts"].as_array().expect("mounts") {
        let volume = m["Name"].as_str().unwrap_or_default().to_string();
        let source = m["Source"].as_str().unwrap_or_default();
        assert_eq!(m["Type"], "volume", "{name}: mount {m}");
        assert!(!source.contains("docker.sock"), "{name}: docker socket {m}");
        assert!(
            allowed_owners
                .iter()
                .any(|id| volume.starts_with(&format!("flotilla-{id}-"))),
            "{name}: volume {volume} is not its own nor an allowed producer's"
        );
        assert_eq!(
            volume_labels(&volume)["flotilla.instance"],
            app.instance.as_str(),
            "{name}: volume {volume} of another instance"
        );
        mounts.push((
            volume,
            m["Destination"].as_str().unwrap_or_default().to_string(),
            m["RW"].as_bool().unwrap_or(true),
        ));
    }
    // No Docker socket by any path, inside the container's own view either.
    let env: Vec<&str> = config["Env"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        !env.iter().any(|e| e.starts_with("DOCKER_HOST")),
        "{name}: DOCKER_HOST in env"
    );
    mounts.sort();
    mounts
}

async fn put_ok(app: &TestApp, path: &str, body: Value) {
    let response = app.put(&app.admin, path, body).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "PUT {path}: {text}");
}

#[tokio::test]
async fn every_kind_of_agent_container_has_the_designed_security_profile() {
    let app = TestApp::spawn().await;
    let plain = unique("plain");
    let producer = unique("producer");
    let consumer = unique("consumer");
    let locked = unique("locked");
    let mut ids = std::collections::BTreeMap::new();
    for name in [&plain, &producer, &consumer, &locked] {
        let agent = app.create_small(&app.admin, name).await;
        ids.insert(name.clone(), agent["id"].as_str().unwrap().to_string());
    }
    put_ok(
        &app,
        &format!("/api/agents/{producer}/folders?apply=true"),
        json!({"expose_enabled": true}),
    )
    .await;
    for name in [&consumer, &locked] {
        put_ok(
            &app,
            &format!("/api/agents/{name}/folders?apply=true"),
            json!({"consume_enabled": true}),
        )
        .await;
    }
    put_ok(
        &app,
        &format!("/api/agents/{locked}/read-only"),
        json!({"enabled": true}),
    )
    .await;
    for name in [&plain, &producer, &consumer, &locked] {
        assert_eq!(app.status_of(&app.admin, name).await, "running", "{name}");
    }

    let home = "/home/developer";
    let state = "/home/developer/.claude";
    let own = |name: &str, kind: &str| format!("flotilla-{}-{kind}", ids[name]);

    let mounts = assert_hardened(&app, &plain, &[&ids[&plain]]);
    assert_eq!(
        mounts,
        vec![
            (own(&plain, "state"), state.into(), true),
            (own(&plain, "workspace"), home.into(), true),
        ]
    );

    let mounts = assert_hardened(&app, &producer, &[&ids[&producer]]);
    assert_eq!(
        mounts,
        vec![
            (own(&producer, "shared"), format!("{home}/shared-out"), true),
            (own(&producer, "state"), state.into(), true),
            (own(&producer, "workspace"), home.into(), true),
        ]
    );

    // The consumer mounts the producer's folder, read-only; nothing else of the producer's.
    let mounts = assert_hardened(&app, &consumer, &[&ids[&consumer], &ids[&producer]]);
    assert_eq!(
        mounts,
        vec![
            (
                own(&producer, "shared"),
                format!("{home}/shared-in/{producer}"),
                false
            ),
            (own(&consumer, "state"), state.into(), true),
            (own(&consumer, "workspace"), home.into(), true),
        ]
    );

    // Read-only: the workspace is mounted read-only; the runtime's state stays writable.
    let mounts = assert_hardened(&app, &locked, &[&ids[&locked], &ids[&producer]]);
    assert_eq!(
        mounts,
        vec![
            (
                own(&producer, "shared"),
                format!("{home}/shared-in/{producer}"),
                false
            ),
            (own(&locked, "state"), state.into(), true),
            (own(&locked, "workspace"), home.into(), false),
        ]
    );

    // And from inside: not root, no capabilities, no way to gain them.
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("agent-{plain}"),
            "sh",
            "-c",
            "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ls /var/run/docker.sock 2>&1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("CapBnd:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("No such file"), "{text}");
}
