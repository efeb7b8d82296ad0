//! Faults injected into a running fleet, and what must hold after each:
//!
//! - **SIGKILL mid-operation**, repeated: the real `flotilla serve` binary on an on-disk store is
//!   killed at a random moment while creates, renames and deletes are in flight, then started
//!   again. Every acknowledged create exists with its data, every acknowledged rename and delete
//!   took effect, nothing half-made remains (no orphan container, volume, row or port lease: the
//!   same names and every port of the range are usable again), and the API answers.
//! - **Docker unreachable**: the server talks to Docker through a proxy socket the test cuts and
//!   restores. Reads keep answering from snapshots, writes fail fast with 503 and change
//!   nothing, and once the daemon is back the fleet shows what happened meanwhile.
//! - **An agent actor panics** (the test-only fault hook, `flotilla_actors::faults`): the
//!   request gets a clean 503, the supervisor restarts the actor with its state reloaded from the
//!   store and Docker, and other agents never notice.
//! - **SIGTERM during a burst of writes**: the server stops accepting, lets the writes in flight
//!   finish, exits, and loses none of the acknowledged ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use flotilla_actors::faults::FaultPlan;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::helpers::{
    Api, DockerCleanup, ServerProcess, TestApp, docker_state, eventually, free_port_block,
    instance_objects, unique,
};

/// A random number in `0..n` (uuid's randomness; the tests need no seeded RNG).
fn random(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `(container name, agent-id label, role label)` of every container of the instance.
fn instance_containers(instance: &str) -> Vec<(String, String, String)> {
    docker_lines(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=flotilla.instance={instance}"),
        "--format",
        "{{.Names}}|{{.Label \"flotilla.agent-id\"}}|{{.Label \"flotilla.role\"}}",
    ])
    .into_iter()
    .map(|line| {
        let mut parts = line.splitn(3, '|').map(str::to_string);
        (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        )
    })
    .collect()
}

/// `(volume name, agent-id label)` of every volume of the instance.
fn instance_volumes(instance: &str) -> Vec<(String, String)> {
    docker_lines(&[
        "volume",
        "ls",
        "--filter",
        &format!("label=flotilla.instance={instance}"),
        "--format",
        "{{.Name}}|{{.Label \"flotilla.agent-id\"}}",
    ])
    .into_iter()
    .map(|line| {
        let (name, id) = line.split_once('|').unwrap_or((&line, ""));
        (name.to_string(), id.to_string())
    })
    .collect()
}

/// Every agent as the admin sees it: name → the agent's JSON.
async fn agents_by_name(api: &Api, token: &str) -> BTreeMap<String, Value> {
    let response = api.list_agents(token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value = response.json().await.expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|a| (a["name"].as_str().expect("name").to_string(), a.clone()))
        .collect()
}

/// The agent's `CLAUDE.md` (where its custom instructions are written), if it can be read.
async fn instructions_of(api: &Api, token: &str, name: &str) -> Option<String> {
    let response = api
        .get(
            token,
            &format!("/api/agents/{name}/files/download?path=CLAUDE.md"),
        )
        .await;
    if response.status() != StatusCode::OK {
        return None;
    }
    response.text().await.ok()
}

/// What must hold of an instance whatever happened to it: Docker's objects are exactly those
/// of the listed agents (a running container named after each, its two volumes, nothing else),
/// no orphan is reported, and ports are unique and inside `ports`.
async fn assert_nothing_half_made(
    api: &Api,
    token: &str,
    instance: &str,
    ports: &std::ops::RangeInclusive<u16>,
    context: &str,
) -> BTreeMap<String, Value> {
    let agents = agents_by_name(api, token).await;
    let ids: BTreeMap<String, String> = agents
        .iter()
        .map(|(name, a)| (a["id"].as_str().expect("id").to_string(), name.clone()))
        .collect();
    let orphans: Value = api
        .get(token, "/api/admin/orphans")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(orphans, json!([]), "{context}: orphans");

    let containers = instance_containers(instance);
    for (name, id, role) in &containers {
        assert!(role.is_empty(), "{context}: helper container {name} left");
        let agent = ids
            .get(id)
            .unwrap_or_else(|| panic!("{context}: container {name} belongs to no agent"));
        assert_eq!(name, &format!("agent-{agent}"), "{context}: container name");
    }
    for (id, name) in &ids {
        let count = containers.iter().filter(|(_, cid, _)| cid == id).count();
        assert_eq!(count, 1, "{context}: containers of {name}");
        let status = agents[name]["status"].as_str().unwrap_or_default();
        let docker = docker_state(&format!("agent-{name}")).unwrap_or_default();
        assert_eq!(
            status == "running",
            docker == "running",
            "{context}: {name} is {status} but its container is {docker}"
        );
    }
    let volumes = instance_volumes(instance);
    for (volume, id) in &volumes {
        assert!(
            ids.contains_key(id),
            "{context}: volume {volume} belongs to no agent"
        );
    }
    for id in ids.keys() {
        let mut own: Vec<&str> = volumes
            .iter()
            .filter(|(_, vid)| vid == id)
            .map(|(v, _)| v.as_str())
            .collect();
        own.sort();
        assert_eq!(
            own,
            vec![
                format!("flotilla-{id}-state").as_str(),
                format!("flotilla-{id}-workspace").as_str()
            ],
            "{context}: volumes of {}",
            ids[id]
        );
    }
    let mut seen = BTreeSet::new();
    for (name, agent) in &agents {
        let port = agent["port"].as_u64().expect("port") as u16;
        assert!(ports.contains(&port), "{context}: {name} has port {port}");
        assert!(seen.insert(port), "{context}: port {port} leased twice");
    }
    agents
}

// ---- SIGKILL -------------------------------------------------------------------------------

/// One operation of a round, and whether the server acknowledged it before it died.
#[derive(Debug, Clone)]
enum Op {
    Create { name: String, instructions: String },
    Rename { from: String, to: String },
    Delete { name: String },
}

/// What the test knows about the fleet: agents known to exist (name → (id, instructions)), and
/// what unacknowledged operations left open.
#[derive(Default)]
struct Model {
    known: BTreeMap<String, (String, String)>,
    /// Unacknowledged creates: name → instructions. The agent exists complete, or not at all.
    maybe_created: BTreeMap<String, String>,
    /// Unacknowledged renames: (from, to, id, instructions). Exactly one of the names exists.
    maybe_renamed: Vec<(String, String, String, String)>,
    /// Unacknowledged deletes: name → (id, instructions). Exists intact, or not at all.
    maybe_deleted: BTreeMap<String, (String, String)>,
    /// Ids of agents an acknowledged delete removed: never seen again.
    deleted: BTreeSet<String>,
    /// Names an acknowledged rename left: free, unless a new agent took them.
    renamed_away: BTreeMap<String, String>,
    /// Names some interrupted operation touched (reused first at the end).
    interrupted: BTreeSet<String>,
}

fn create_body(name: &str, instructions: &str) -> Value {
    json!({
        "name": name,
        "resources": {"cpu": "0.25", "memory": "64m"},
        "custom_instructions": instructions,
    })
}

async fn run(api: Api, token: String, op: Op) -> (Op, Option<(StatusCode, Value)>) {
    let response = match &op {
        Op::Create { name, instructions } => {
            api.client
                .post(api.url("/api/agents"))
                .bearer_auth(&token)
                .json(&create_body(name, instructions))
                .send()
                .await
        }
        Op::Rename { from, to } => {
            api.client
                .put(api.url(&format!("/api/agents/{from}/rename")))
                .bearer_auth(&token)
                .json(&json!({ "new_name": to }))
                .send()
                .await
        }
        Op::Delete { name } => {
            api.client
                .delete(api.url(&format!("/api/agents/{name}")))
                .bearer_auth(&token)
                .send()
                .await
        }
    };
    let answer = match response {
        Ok(r) => {
            let status = r.status();
            match r.json::<Value>().await {
                Ok(body) => Some((status, body)),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    (op, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_operations_loses_no_acknowledged_change_and_leaves_nothing_half_made() {
    const ROUNDS: usize = 5;
    let instance = unique("sigkill");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let ports = free_port_block(12);
    let range = format!("{}-{}", ports.start(), ports.end());
    let env = [("FLOTILLA_SSH_PORTS", range.as_str())];
    let mut server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    let admin = server.api.admin_token().await;

    let mut model = Model::default();
    let mut every_name = BTreeSet::new();
    for _ in 0..3 {
        let name = unique("k");
        let instructions = format!("instructions of {name}");
        let created = server
            .api
            .create_agent(&admin, create_body(&name, &instructions))
            .await;
        assert_eq!(created.status(), StatusCode::OK);
        let body: Value = created.json().await.unwrap();
        model.known.insert(
            name.clone(),
            (body["id"].as_str().unwrap().to_string(), instructions),
        );
        every_name.insert(name);
    }

    let mut acknowledged = 0;
    let mut unacknowledged = 0;
    for round in 0..ROUNDS {
        // Two creates, a rename and a delete of agents known to exist, all at once.
        let mut ops = Vec::new();
        for _ in 0..2 {
            let name = unique("k");
            every_name.insert(name.clone());
            ops.push(Op::Create {
                instructions: format!("instructions of {name}"),
                name,
            });
        }
        let existing: Vec<String> = model.known.keys().cloned().collect();
        if existing.len() >= 2 {
            let pick = random(existing.len() as u64) as usize;
            let to = unique("k");
            every_name.insert(to.clone());
            ops.push(Op::Rename {
                from: existing[pick].clone(),
                to,
            });
            let other = (pick + 1 + random(existing.len() as u64 - 1) as usize) % existing.len();
            ops.push(Op::Delete {
                name: existing[other].clone(),
            });
        }
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|op| tokio::spawn(run(server.api.clone(), admin.clone(), op)))
            .collect();
        // Kill at a random moment: before, during or after the operations' Docker work.
        let delay = Duration::from_millis(50 + random(1500));
        tokio::time::sleep(delay).await;
        server.kill9();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }

        for (op, answer) in results {
            let ok = matches!(&answer, Some((StatusCode::OK, _)));
            if let Some((status, body)) = answer.as_ref().filter(|_| !ok) {
                // A refusal (not a failure) changes nothing: only 2xx or no answer are expected.
                assert!(
                    status.is_client_error(),
                    "round {round}: {op:?} answered {status} {body}"
                );
                continue;
            }
            if ok {
                acknowledged += 1;
            } else {
                unacknowledged += 1;
            }
            match op {
                Op::Create { name, instructions } => {
                    if ok {
                        let id = answer.unwrap().1["id"].as_str().unwrap().to_string();
                        model.known.insert(name, (id, instructions));
                    } else {
                        model.interrupted.insert(name.clone());
                        model.maybe_created.insert(name, instructions);
                    }
                }
                Op::Rename { from, to } => {
                    let (id, instructions) = model.known.remove(&from).unwrap();
                    if ok {
                        model.renamed_away.insert(from, id.clone());
                        model.known.insert(to, (id, instructions));
                    } else {
                        model.interrupted.insert(from.clone());
                        model.interrupted.insert(to.clone());
                        model.maybe_renamed.push((from, to, id, instructions));
                    }
                }
                Op::Delete { name } => {
                    let (id, instructions) = model.known.remove(&name).unwrap();
                    if ok {
                        model.deleted.insert(id);
                    } else {
                        model.interrupted.insert(name.clone());
                        model.maybe_deleted.insert(name, (id, instructions));
                    }
                }
            }
        }

        server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
        let context = format!("round {round} (killed after {delay:?})");
        let agents =
            assert_nothing_half_made(&server.api, &admin, &instance, &ports, &context).await;
        for (name, (id, instructions)) in &model.known {
            let agent = agents
                .get(name)
                .unwrap_or_else(|| panic!("{context}: acknowledged {name} is missing"));
            assert_eq!(agent["id"].as_str(), Some(id.as_str()), "{context}: {name}");
            assert_eq!(
                instructions_of(&server.api, &admin, name).await.as_deref(),
                Some(instructions.as_str()),
                "{context}: data of {name}"
            );
        }
        let id_of = |name: &str| {
            agents
                .get(name)
                .and_then(|a| a["id"].as_str())
                .map(str::to_string)
        };
        for id in &model.deleted {
            assert!(
                !agents
                    .values()
                    .any(|a| a["id"].as_str() == Some(id.as_str())),
                "{context}: deleted agent {id} is back"
            );
        }
        for (name, id) in &model.renamed_away {
            assert_ne!(
                id_of(name).as_ref(),
                Some(id),
                "{context}: {name} was renamed away, yet is back"
            );
        }
        // Settle what the unacknowledged operations did: each agent exists complete with its
        // data, or is gone without a trace (the invariants above).
        let mut settled: Vec<(String, String, String)> = Vec::new();
        for (name, instructions) in std::mem::take(&mut model.maybe_created) {
            if let Some(id) = id_of(&name) {
                settled.push((name, id, instructions));
            }
        }
        for (from, to, id, instructions) in std::mem::take(&mut model.maybe_renamed) {
            let (at_from, at_to) = (id_of(&from), id_of(&to));
            match (at_from == Some(id.clone()), at_to == Some(id.clone())) {
                (true, false) => settled.push((from, id, instructions)),
                (false, true) => {
                    model.renamed_away.insert(from, id.clone());
                    settled.push((to, id, instructions));
                }
                other => panic!("{context}: rename {from} → {to} left {other:?}"),
            }
        }
        for (name, (id, instructions)) in std::mem::take(&mut model.maybe_deleted) {
            match id_of(&name) {
                Some(found) => {
                    assert_eq!(found, id, "{context}: {name} changed identity");
                    settled.push((name, id, instructions));
                }
                None => {
                    model.deleted.insert(id);
                }
            }
        }
        for (name, id, instructions) in settled {
            assert_eq!(
                instructions_of(&server.api, &admin, &name).await.as_deref(),
                Some(instructions.as_str()),
                "{context}: data of {name}"
            );
            model.known.insert(name, (id, instructions));
        }
        assert_eq!(
            agents.keys().collect::<BTreeSet<_>>(),
            model.known.keys().collect::<BTreeSet<_>>(),
            "{context}: agents listed vs known"
        );
        // The API answers commands, not just reads.
        if let Some(name) = model.known.keys().next().cloned() {
            let stopped = server.api.stop_agent(&admin, &name).await;
            assert_eq!(stopped.status(), StatusCode::OK, "{context}: stop {name}");
            let started = server.api.start_agent(&admin, &name).await;
            assert_eq!(started.status(), StatusCode::OK, "{context}: start {name}");
        }
    }
    assert!(acknowledged > 0, "no operation was acknowledged");
    eprintln!(
        "sigkill: {ROUNDS} rounds, {acknowledged} acknowledged and {unacknowledged} interrupted operations"
    );

    // Nothing leaked: after deleting every agent, every port of the range can be leased again
    // and every name used in the test (killed mid-create, mid-rename, mid-delete) is free.
    for name in model.known.keys() {
        let deleted = server.api.delete_agent(&admin, name).await;
        assert_eq!(deleted.status(), StatusCode::OK, "delete {name}");
    }
    assert_eq!(instance_objects(&instance), (vec![], vec![]));
    let mut reuse: Vec<String> = model.interrupted.iter().cloned().collect();
    reuse.extend(
        every_name
            .into_iter()
            .filter(|n| !model.interrupted.contains(n)),
    );
    reuse.truncate(ports.clone().count());
    let mut creates = Vec::new();
    for name in &reuse {
        let api = server.api.clone();
        let (admin, name) = (admin.clone(), name.clone());
        creates.push(tokio::spawn(async move {
            let response = api
                .create_agent(
                    &admin,
                    json!({"name": name, "resources": {"cpu": "0.25", "memory": "64m"}}),
                )
                .await;
            (name, response.status())
        }));
    }
    for create in creates {
        let (name, status) = create.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{name} could not be reused");
    }
    if reuse.len() == ports.clone().count() {
        let full = server
            .api
            .create_agent(&admin, json!({"name": unique("one-too-many")}))
            .await;
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_nothing_half_made(&server.api, &admin, &instance, &ports, "after reuse").await;
}

/// The one window of a rename that a random kill rarely hits, made deterministic: the server
/// died after the registry took the new name but before Docker renamed the container.
#[tokio::test]
async fn a_container_left_with_its_old_name_by_a_crash_mid_rename_is_renamed_at_recovery() {
    let instance = unique("midrename");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&instance, data.path()).await;
    let admin = server.api.admin_token().await;
    let (old, new) = (unique("old"), unique("new"));
    server.api.create_small(&admin, &old).await;
    let renamed = server.api.rename_agent(&admin, &old, &new).await;
    assert_eq!(renamed.status(), StatusCode::OK);
    server.kill9();
    // Undo the Docker half of the rename, as if the server had died between the two.
    let out = Command::new("docker")
        .args(["rename", &format!("agent-{new}"), &format!("agent-{old}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let server = ServerProcess::start(&instance, data.path()).await;
    assert_eq!(
        docker_state(&format!("agent-{new}")).as_deref(),
        Some("running")
    );
    assert_eq!(docker_state(&format!("agent-{old}")), None);
    // So the old name is free for a new agent at once.
    server.api.create_small(&admin, &old).await;
    let ports = 2222..=2999;
    assert_nothing_half_made(&server.api, &admin, &instance, &ports, "after recovery").await;
}

// ---- SIGTERM -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_of_writes_drains_them_and_loses_none() {
    let instance = unique("sigterm");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let ports = free_port_block(16);
    let range = format!("{}-{}", ports.start(), ports.end());
    let env = [("FLOTILLA_SSH_PORTS", range.as_str())];
    let mut server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    let admin = server.api.admin_token().await;
    let existing: Vec<String> = (0..2).map(|_| unique("t")).collect();
    for name in &existing {
        server.api.create_small(&admin, name).await;
    }

    // A burst of writes: creates, renames and settings changes, all in flight together.
    let mut requests = Vec::new();
    let mut creates = Vec::new();
    for _ in 0..5 {
        let name = unique("t");
        creates.push(name.clone());
        let api = server.api.clone();
        let admin = admin.clone();
        requests.push(tokio::spawn(async move {
            let body = create_body(&name, &format!("instructions of {name}"));
            let r = api
                .client
                .post(api.url("/api/agents"))
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await;
            (format!("create {name}"), r.map(|r| r.status()))
        }));
    }
    let renamed: Vec<(String, String)> = existing
        .iter()
        .map(|name| (name.clone(), unique("t")))
        .collect();
    for (from, to) in &renamed {
        let api = server.api.clone();
        let (admin, from, to) = (admin.clone(), from.clone(), to.clone());
        requests.push(tokio::spawn(async move {
            let r = api
                .client
                .put(api.url(&format!("/api/agents/{from}/rename")))
                .bearer_auth(&admin)
                .json(&json!({ "new_name": to }))
                .send()
                .await;
            (format!("rename {from}"), r.map(|r| r.status()))
        }));
    }
    let api = server.api.clone();
    let admin_token = admin.clone();
    requests.push(tokio::spawn(async move {
        let email = format!("{}@example.com", unique("drain"));
        let r = api
            .create_user(&admin_token, &email, "user-password-1")
            .await;
        (format!("user {email}"), Ok(r.status()))
    }));

    tokio::time::sleep(Duration::from_millis(150 + random(300))).await;
    let signalled = Instant::now();
    server.sigterm();
    // New connections are no longer served once the signal is handled.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let late = tokio::spawn({
        let url = server.api.url("/health");
        async move { fresh.get(url).send().await.map(|r| r.status()) }
    });

    let mut answered = Vec::new();
    for request in requests {
        let (what, status) = request.await.unwrap();
        let status =
            status.unwrap_or_else(|e| panic!("{what}: in flight at SIGTERM, not answered: {e}"));
        assert_eq!(status, StatusCode::OK, "{what}");
        answered.push(what);
    }
    let exit = server.wait_exit(Duration::from_secs(40)).await;
    let took = signalled.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    assert!(
        late.await.unwrap().is_err(),
        "a request that arrived after SIGTERM was served"
    );
    eprintln!(
        "sigterm: {} writes in flight, all answered; exit after {took:?}",
        answered.len()
    );

    // Everything acknowledged is there after a restart.
    let server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    let agents =
        assert_nothing_half_made(&server.api, &admin, &instance, &ports, "after SIGTERM").await;
    for name in &creates {
        assert!(agents.contains_key(name), "acknowledged create {name} lost");
        assert_eq!(
            instructions_of(&server.api, &admin, name).await,
            Some(format!("instructions of {name}")),
            "data of {name}"
        );
    }
    for (from, to) in &renamed {
        assert!(agents.contains_key(to), "acknowledged rename to {to} lost");
        assert!(
            !agents.contains_key(from),
            "{from} still exists after its rename"
        );
    }
    let users: Value = server
        .api
        .get(&admin, "/api/users")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(2), "{users}");
}

// ---- Docker unreachable --------------------------------------------------------------------

/// A Unix socket that forwards to the real Docker socket until it is cut: then every open
/// connection is dropped and new ones are closed at once, as a daemon that went away would.
struct DockerProxy {
    socket: PathBuf,
    up: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl DockerProxy {
    async fn start(dir: &Path) -> Self {
        let socket = dir.join("docker-proxy.sock");
        let listener = UnixListener::bind(&socket).expect("bind proxy socket");
        let (up, _) = watch::channel(true);
        let state = up.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut state = state.clone();
                if !*state.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(daemon) = UnixStream::connect("/var/run/docker.sock").await else {
                        return;
                    };
                    let (mut client, mut daemon) = (client, daemon);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut daemon) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { socket, up, task }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An error answer: its status, code, and how long it took.
async fn timed(
    request: impl std::future::Future<Output = reqwest::Response>,
) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = request.await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_docker_unreachable_reads_answer_writes_fail_fast_and_the_fleet_reconciles_after() {
    let instance = unique("nodocker");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let proxy = DockerProxy::start(data.path()).await;
    let host = proxy.docker_host();
    let ports = free_port_block(8);
    let range = format!("{}-{}", ports.start(), ports.end());
    let env = [
        ("DOCKER_HOST", host.as_str()),
        ("FLOTILLA_SSH_PORTS", range.as_str()),
    ];
    let server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    let api = server.api.clone();
    let admin = api.admin_token().await;
    let (running, stopped) = (unique("up"), unique("down"));
    api.create_small(&admin, &running).await;
    api.create_small(&admin, &stopped).await;
    assert_eq!(
        api.stop_agent(&admin, &stopped).await.status(),
        StatusCode::OK
    );
    let before = agents_by_name(&api, &admin).await;

    proxy.cut();

    // Reads answer from the snapshots, at once.
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(agents_by_name(&api, &admin).await, before);
        let one = api.get_agent(&admin, &running).await;
        assert_eq!(one.status(), StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "reads waited on Docker"
        );
    }
    assert_eq!(
        api.get(&admin, "/api/users/me").await.status(),
        StatusCode::OK
    );

    // Writes fail fast with 503 and change nothing.
    let newcomer = unique("new");
    let renamed = unique("renamed");
    let attempts = [
        (
            "create",
            timed(api.create_agent(&admin, json!({"name": newcomer}))).await,
        ),
        ("start", timed(api.start_agent(&admin, &stopped)).await),
        ("stop", timed(api.stop_agent(&admin, &running)).await),
        (
            "rename",
            timed(api.rename_agent(&admin, &running, &renamed)).await,
        ),
        (
            "autonomy",
            timed(api.put(
                &admin,
                &format!("/api/agents/{running}/autonomy"),
                json!({"enabled": true}),
            ))
            .await,
        ),
        ("delete", timed(api.delete_agent(&admin, &stopped)).await),
    ];
    for (what, (status, body, took)) in &attempts {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
        assert_eq!(body["code"], "docker_unavailable", "{what}: {body}");
        assert!(body["detail"].is_string(), "{what}: {body}");
        assert!(*took < Duration::from_secs(5), "{what} took {took:?}");
    }
    // Nothing changed, and nothing was left behind for the failed create.
    assert_eq!(agents_by_name(&api, &admin).await, before);
    let containers = instance_containers(&instance);
    assert_eq!(containers.len(), 2, "{containers:?}");

    // Meanwhile, outside flotilla, the running agent is stopped and the stopped one started.
    let outside = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    outside(&["stop", "-t", "1", &format!("agent-{running}")]);
    outside(&["start", &format!("agent-{stopped}")]);

    proxy.restore();

    // The watcher resubscribes and re-reads every agent: the API shows the truth.
    eventually(Duration::from_secs(30), "the fleet reconciled", || async {
        api.status_of(&admin, &running).await == "stopped"
            && api.status_of(&admin, &stopped).await == "running"
    })
    .await;
    // And writes work again, the create with the name that failed before.
    api.create_small(&admin, &newcomer).await;
    assert_eq!(
        api.start_agent(&admin, &running).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.rename_agent(&admin, &running, &renamed).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.delete_agent(&admin, &stopped).await.status(),
        StatusCode::OK
    );
    assert_nothing_half_made(&api, &admin, &instance, &ports, "after the outage").await;
}

// ---- actor panic ---------------------------------------------------------------------------

#[tokio::test]
async fn a_panicking_agent_actor_is_restarted_with_its_state_and_others_are_unaffected() {
    let faults = FaultPlan::new();
    let plan = faults.clone();
    let app = TestApp::spawn_with(move |c| c.test_faults = Some(plan)).await;
    let victim = unique("victim");
    let bystander = unique("bystander");
    app.create_small(&app.admin, &victim).await;
    app.create_small(&app.admin, &bystander).await;
    assert_eq!(
        app.stop_agent(&app.admin, &bystander).await.status(),
        StatusCode::OK
    );
    let configured = app
        .put(
            &app.admin,
            &format!("/api/agents/{victim}/autonomy"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(configured.status(), StatusCode::OK);
    let before = app
        .get_agent(&app.admin, &victim)
        .await
        .json::<Value>()
        .await
        .unwrap();

    // The stop panics inside the actor: a clean 503 at once, not a hang.
    faults.panic_next_operation(&victim);
    let (status, body, took) = timed(app.stop_agent(&app.admin, &victim)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "restarting", "{body}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The other agent is untouched and keeps working.
    assert_eq!(
        app.start_agent(&app.admin, &bystander).await.status(),
        StatusCode::OK
    );

    // The supervisor restarts the actor with its state reloaded: still running (the stop never
    // ran), still configured; and it takes commands again.
    eventually(
        Duration::from_secs(10),
        "the victim's actor is back",
        || async { app.stop_agent(&app.admin, &victim).await.status() == StatusCode::OK },
    )
    .await;
    let after = app
        .get_agent(&app.admin, &victim)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(after["autonomy_enabled"], true);
    assert_eq!(after["status"], "stopped");
    assert_eq!(
        docker_state(&format!("agent-{victim}")).as_deref(),
        Some("exited")
    );
    assert_eq!(
        app.start_agent(&app.admin, &victim).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.status_of(&app.admin, &victim).await, "running");
    assert_eq!(app.status_of(&app.admin, &bystander).await, "running");

    // A create that panics: 503, then nothing of it remains and its name is free again.
    let doomed = unique("doomed");
    faults.panic_next_operation(&doomed);
    let (status, body, _) = timed(app.create_agent(&app.admin, json!({"name": doomed}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        app.get_agent(&app.admin, &doomed).await.status(),
        StatusCode::NOT_FOUND
    );
    // Its row is rolled back by the restarted actor; until then the name is still reserved.
    eventually(
        Duration::from_secs(10),
        "the doomed name is free again",
        || async {
            let created = app
                .create_agent(
                    &app.admin,
                    json!({"name": doomed, "resources": {"cpu": "0.25", "memory": "128m"}}),
                )
                .await;
            assert_ne!(created.status(), StatusCode::INTERNAL_SERVER_ERROR);
            created.status() == StatusCode::OK
        },
    )
    .await;

    // A delete that panics: 503, the agent is intact, and deleting it again works.
    faults.panic_next_operation(&bystander);
    let (status, body, _) = timed(app.delete_agent(&app.admin, &bystander)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    eventually(
        Duration::from_secs(10),
        "the bystander's actor is back",
        || async { app.delete_agent(&app.admin, &bystander).await.status() == StatusCode::OK },
    )
    .await;
    assert_eq!(docker_state(&format!("agent-{bystander}")), None);
    let names: Vec<String> = app
        .list_agents(&app.admin)
        .await
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![victim.clone(), doomed.clone()];
    expected.sort();
    assert_eq!(names, expected);
    let (containers, volumes) = app.docker_objects();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert_eq!(volumes.len(), 4, "{volumes:?}");
}
