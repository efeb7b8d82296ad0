//! SSH access over real HTTP, the real gateway and Debian's real OpenSSH client (`/usr/bin/ssh`),
//! against real Docker, on loopback only.
//!
//! Every app here gets its own random block of SSH ports (each test app has its own store, so
//! two apps would otherwise both lease 2222). Expiry is watched with a real clock: these apps
//! lower the shortest key lifetime to one second (`Config::ssh_min_ttl`, a setting that is not
//! exposed to operators), so a key can be issued for a few seconds and seen to stop working —
//! the same code path as the API's 0.1 h minimum, without a six-minute test. The bounds test
//! runs on an app with the production minimum.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::helpers::{
    Api, DockerCleanup, ServerProcess, TestApp, eventually, free_port_block, unique,
};

/// Longest any one `ssh` invocation may take.
const SSH_TIMEOUT: Duration = Duration::from_secs(30);

impl Api {
    pub async fn grant_ssh(&self, token: &str, name: &str, body: Value) -> reqwest::Response {
        self.post(token, &format!("/api/agents/{name}/ssh-access"), Some(body))
            .await
    }

    pub async fn revoke_ssh(&self, token: &str, name: &str) -> reqwest::Response {
        self.delete(token, &format!("/api/agents/{name}/ssh-access"))
            .await
    }
}

/// An app with its own SSH port block and a one-second minimum key lifetime.
async fn spawn() -> TestApp {
    let ports = free_port_block(8);
    TestApp::spawn_with(move |c| {
        c.ssh_ports = ports;
        c.ssh_min_ttl = Duration::from_secs(1);
    })
    .await
}

async fn grant(app: &TestApp, token: &str, name: &str, body: Value) -> (StatusCode, Value) {
    let response = app.grant_ssh(token, name, body).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Grant access, failing the test on anything but 200.
async fn granted(app: &TestApp, name: &str, body: Value) -> Value {
    let (status, body) = grant(app, &app.admin, name, body).await;
    assert_eq!(status, StatusCode::OK, "grant ssh to {name}: {body}");
    body
}

fn port_of(access: &Value) -> u16 {
    access["connection"]["port"].as_u64().expect("port") as u16
}

/// Save a private key where ssh accepts it (mode 0600).
fn save_key(dir: &Path, file: &str, private_key: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, private_key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A key pair made by ssh-keygen: (private key file, public key text).
fn keygen(dir: &Path, file: &str) -> (PathBuf, String) {
    let path = dir.join(file);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@flotilla", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

struct SshOutput {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ssh_command(key: &Path, port: u16, extra: &[&str]) -> tokio::process::Command {
    ssh_command_as("developer", key, port, extra)
}

fn ssh_command_as(user: &str, key: &Path, port: u16, extra: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("/usr/bin/ssh");
    command
        .args(["-F", "/dev/null"])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "ConnectTimeout=10"])
        .arg("-i")
        .arg(key)
        .args(["-p", &port.to_string()])
        .args(extra)
        .arg(format!("{user}@127.0.0.1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Run `ssh ... developer@127.0.0.1 <remote>` (no PTY unless `extra` asks), feeding `stdin`.
async fn ssh_with(
    key: &Path,
    port: u16,
    extra: &[&str],
    remote: &str,
    stdin: Option<&[u8]>,
) -> SshOutput {
    let mut command = ssh_command(key, port, extra);
    command.arg(remote);
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("spawn ssh");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(bytes).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(SSH_TIMEOUT, child.wait_with_output())
        .await
        .expect("ssh timed out")
        .expect("ssh ran");
    SshOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn ssh(key: &Path, port: u16, remote: &str) -> SshOutput {
    ssh_with(key, port, &["-T"], remote, None).await
}

/// Whether the key is refused (OpenSSH exits 255 and says so).
async fn refused(key: &Path, port: u16) -> bool {
    let out = ssh(key, port, "true").await;
    out.code == Some(255)
}

/// A long-running session, to watch it being ended from the server side; returns once the
/// remote command runs.
async fn long_session(key: &Path, port: u16) -> tokio::process::Child {
    let mut command = ssh_command(key, port, &["-T"]);
    command.arg("echo in; sleep 120").stdin(Stdio::null());
    let mut child = command.spawn().expect("spawn ssh");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(SSH_TIMEOUT, lines.next_line())
        .await
        .expect("session did not start")
        .unwrap();
    assert_eq!(first.as_deref(), Some("in"));
    child
}

/// Wait (bounded) for a session to end; its exit code.
async fn ended(child: &mut tokio::process::Child, within: Duration) -> Option<i32> {
    tokio::time::timeout(within, child.wait())
        .await
        .expect("session still open")
        .expect("wait")
        .code()
}

fn docker_exec(container: &str, script: &str) {
    let status = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .status()
        .unwrap();
    assert!(status.success(), "docker exec {script}");
}

async fn port_is_closed(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test]
async fn generated_key_logs_in_runs_commands_and_propagates_exit_status() {
    let app = spawn().await;
    let name = unique("shell");
    let agent = app.create_small(&app.admin, &name).await;
    let before = Utc::now();
    let access = granted(&app, &name, json!({})).await;

    assert_eq!(access["agent"], name.as_str());
    let connection = &access["connection"];
    let port = port_of(&access);
    assert_eq!(u64::from(port), agent["port"].as_u64().unwrap());
    assert_eq!(connection["host"], "127.0.0.1");
    assert_eq!(connection["user"], "developer");
    let command = connection["command"].as_str().unwrap();
    assert!(
        command.starts_with("ssh -i ")
            && command.ends_with(&format!("-p {port} developer@127.0.0.1")),
        "{command}"
    );
    let expires: DateTime<Utc> = access["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires - before).num_seconds() as f64 / 3600.0;
    assert!(
        (3.99..=4.01).contains(&hours),
        "default TTL is 4 h, got {hours}"
    );
    assert!(
        access["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
    let private_key = access["private_key"].as_str().unwrap();
    assert!(
        private_key.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{private_key}"
    );

    let dir = tempfile::tempdir().unwrap();
    let key = save_key(dir.path(), "id_flotilla", private_key);
    let container = format!("agent-{name}");
    docker_exec(
        &container,
        "printf 'hello from the workspace\\n' > /home/developer/greeting.txt",
    );

    let out = ssh(&key, port, "cat /home/developer/greeting.txt").await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "hello from the workspace\n");

    let out = ssh(&key, port, "exit 3").await;
    assert_eq!(out.code, Some(3), "stderr: {}", out.stderr);

    // As developer, in the workspace, stdout and stderr kept apart.
    let out = ssh(&key, port, "id -u; pwd; echo oops >&2").await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "1000\n/home/developer\n");
    assert_eq!(out.stderr, "oops\n");

    // Standard input reaches the command, and its end is seen.
    let out = ssh_with(
        &key,
        port,
        &["-T"],
        "cat > piped.txt; wc -c < piped.txt",
        Some(b"0123456789"),
    )
    .await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "10");

    // With a terminal: the pty gets the client's size, and follows its window changes.
    let out = terminal_session(&key, port).await;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(
        out.contains("size 30 100"),
        "pty-req size not honoured: {out:?}"
    );
    assert!(
        out.contains("resized 40 120"),
        "window-change not honoured: {out:?}"
    );
}

/// `ssh -tt` run on a terminal of 30x100 (made by `script`), resized to 40x120 a second in;
/// the remote side reports its terminal and both sizes. (The remote sleeps first because, on
/// Docker API < 1.42, a terminal is sized just after its process starts.)
async fn terminal_session(key: &Path, port: u16) -> String {
    let ssh = format!(
        "/usr/bin/ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -i {} -p {port} -tt \
         developer@127.0.0.1 'sleep 0.5; tty; echo size $(stty size < $(tty)); sleep 2; \
         echo resized $(stty size < $(tty))'",
        key.display()
    );
    let script =
        format!("stty rows 30 cols 100; (sleep 1.2; stty rows 40 cols 120 < /dev/tty) & {ssh}");
    let child = tokio::process::Command::new("script")
        .args(["-qec", &script, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn script");
    let output = tokio::time::timeout(SSH_TIMEOUT, child.wait_with_output())
        .await
        .expect("ssh timed out")
        .expect("ssh ran");
    assert!(
        output.status.success(),
        "{:?} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn client_supplied_key_logs_in_and_no_private_key_is_returned() {
    let app = spawn().await;
    let name = unique("byok");
    app.create_small(&app.admin, &name).await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keygen(dir.path(), "id_ed25519");

    let access = granted(&app, &name, json!({"public_key": public, "ttl_hours": 1})).await;
    assert!(access.get("private_key").is_none(), "{access}");
    let port = port_of(&access);
    assert_eq!(
        access["connection"]["command"],
        format!("ssh -p {port} developer@127.0.0.1")
    );
    let fingerprint = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).into_owned();
    assert!(
        fingerprint.contains(access["fingerprint"].as_str().unwrap()),
        "{fingerprint} vs {access}"
    );

    let out = ssh(&key, port, "echo works").await;
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "works\n");

    // Another key pair, never registered, is refused; so is any user but developer.
    let (stranger, _) = keygen(dir.path(), "id_other");
    assert!(refused(&stranger, port).await);
    let mut as_root = ssh_command_as("root", &key, port, &["-T"]);
    as_root.arg("true").stdin(Stdio::null());
    let as_root = tokio::time::timeout(SSH_TIMEOUT, as_root.output())
        .await
        .expect("ssh timed out")
        .unwrap();
    assert_eq!(as_root.status.code(), Some(255));
}

#[tokio::test]
async fn a_key_for_one_agent_is_refused_on_another_agents_port() {
    let app = spawn().await;
    let (a, b) = (unique("agent-a"), unique("agent-b"));
    app.create_small(&app.admin, &a).await;
    app.create_small(&app.admin, &b).await;
    let access_a = granted(&app, &a, json!({})).await;
    let access_b = granted(&app, &b, json!({})).await;
    let (port_a, port_b) = (port_of(&access_a), port_of(&access_b));
    assert_ne!(port_a, port_b);

    let dir = tempfile::tempdir().unwrap();
    let key_a = save_key(dir.path(), "a", access_a["private_key"].as_str().unwrap());
    let key_b = save_key(dir.path(), "b", access_b["private_key"].as_str().unwrap());
    // Each key opens its own agent, and lands in that agent's container.
    let out = ssh(&key_a, port_a, "hostname").await;
    assert_eq!(out.stdout.trim(), a, "stderr: {}", out.stderr);
    let out = ssh(&key_b, port_b, "hostname").await;
    assert_eq!(out.stdout.trim(), b, "stderr: {}", out.stderr);
    // And never the other one.
    let out = ssh(&key_a, port_b, "hostname").await;
    assert_eq!(out.code, Some(255), "stdout: {}", out.stdout);
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);
    assert!(refused(&key_b, port_a).await);
}

#[tokio::test]
async fn a_key_is_refused_once_expired_and_its_session_ends() {
    let app = spawn().await;
    let name = unique("expiry");
    app.create_small(&app.admin, &name).await;
    // 0.002 h = 7.2 s (this app's minimum is one second; see the module doc).
    let access = granted(&app, &name, json!({"ttl_hours": 0.002})).await;
    let expires: DateTime<Utc> = access["expires_at"].as_str().unwrap().parse().unwrap();
    let port = port_of(&access);
    let dir = tempfile::tempdir().unwrap();
    let key = save_key(dir.path(), "k", access["private_key"].as_str().unwrap());

    let out = ssh(&key, port, "echo before").await;
    assert_eq!(out.stdout, "before\n", "stderr: {}", out.stderr);
    assert!(
        Utc::now() < expires,
        "the first login took longer than the key's life"
    );
    let mut session = long_session(&key, port).await;

    // The session is cut when the key expires, and the key opens nothing afterwards.
    let left = (expires - Utc::now()).to_std().unwrap_or_default();
    let code = ended(&mut session, left + Duration::from_secs(10)).await;
    assert_ne!(code, Some(0));
    assert!(
        Utc::now() >= expires,
        "the session ended before the key expired"
    );
    assert!(refused(&key, port).await, "an expired key still logs in");
    // With no valid key left, the port is closed at the next reconcile.
    eventually(
        Duration::from_secs(30),
        "the expired agent's port closes",
        || port_is_closed(port),
    )
    .await;
}

#[tokio::test]
async fn revoked_keys_are_refused_at_once_and_sessions_end() {
    let app = spawn().await;
    let name = unique("revoke");
    app.create_small(&app.admin, &name).await;
    let dir = tempfile::tempdir().unwrap();
    let first = granted(&app, &name, json!({})).await;
    let (second_key, public) = keygen(dir.path(), "second");
    granted(&app, &name, json!({"public_key": public})).await;
    let port = port_of(&first);
    let first_key = save_key(dir.path(), "first", first["private_key"].as_str().unwrap());
    assert_eq!(ssh(&first_key, port, "true").await.code, Some(0));
    assert_eq!(ssh(&second_key, port, "true").await.code, Some(0));
    let mut session = long_session(&first_key, port).await;

    let response = app.revoke_ssh(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revoked_keys"], 2, "{body}");

    // Immediately: no retry loop.
    assert!(port_is_closed(port).await || refused(&first_key, port).await);
    assert!(port_is_closed(port).await || refused(&second_key, port).await);
    let code = ended(&mut session, Duration::from_secs(10)).await;
    assert_ne!(code, Some(0));
    eventually(
        Duration::from_secs(5),
        "the revoked agent's port closes",
        || port_is_closed(port),
    )
    .await;

    // Revoking again is fine; a new grant opens the port again.
    let response = app.revoke_ssh(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again = granted(&app, &name, json!({})).await;
    let key = save_key(dir.path(), "again", again["private_key"].as_str().unwrap());
    assert_eq!(ssh(&key, port, "true").await.code, Some(0));
}

#[tokio::test]
async fn deleting_the_agent_closes_its_port_and_drops_its_keys() {
    let app = spawn().await;
    let name = unique("gone");
    app.create_small(&app.admin, &name).await;
    let access = granted(&app, &name, json!({})).await;
    let port = port_of(&access);
    assert!(!port_is_closed(port).await);
    let response = app.delete_agent(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    eventually(
        Duration::from_secs(10),
        "the deleted agent's port closes",
        || port_is_closed(port),
    )
    .await;
    // A new agent gets the freed port lease and starts with no keys.
    let next = unique("next");
    let agent = app.create_small(&app.admin, &next).await;
    assert_eq!(agent["port"].as_u64(), Some(u64::from(port)));
    let dir = tempfile::tempdir().unwrap();
    let old_key = save_key(dir.path(), "old", access["private_key"].as_str().unwrap());
    let fresh = granted(&app, &next, json!({})).await;
    assert_eq!(port_of(&fresh), port);
    assert!(
        refused(&old_key, port).await,
        "a deleted agent's key opened its successor"
    );
}

#[tokio::test]
async fn a_stopped_agent_is_409() {
    let app = spawn().await;
    let name = unique("asleep");
    app.create_small(&app.admin, &name).await;
    assert_eq!(
        app.stop_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    let (status, body) = grant(&app, &app.admin, &name, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("start"), "{body}");
}

#[tokio::test]
async fn bad_ttl_and_bad_keys_are_422_and_bounds_are_inclusive() {
    // The production minimum (0.1 h) applies here.
    let ports = free_port_block(8);
    let app = TestApp::spawn_with(move |c| c.ssh_ports = ports).await;
    let name = unique("bounds");
    app.create_small(&app.admin, &name).await;

    for ttl in [
        json!(0.09),
        json!(0.001),
        json!(24.01),
        json!(-1),
        json!(0),
        json!("4"),
        json!(true),
        json!([4]),
    ] {
        let (status, body) = grant(&app, &app.admin, &name, json!({"ttl_hours": ttl})).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl {ttl}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().starts_with("ttl_hours"),
            "ttl {ttl}: {body}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rsa = dir.path().join("rsa1024");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(status.success());
    let short_rsa = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let private = std::fs::read_to_string(&rsa).unwrap();
    for key in [
        json!("garbage"),
        json!("ssh-ed25519 AAAAnotbase64!!"),
        json!(""),
        json!(42),
        json!(short_rsa),
        json!(private),
    ] {
        let (status, body) = grant(&app, &app.admin, &name, json!({"public_key": key})).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "key {key}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("public_key"), "{body}");
        assert!(
            !detail.contains("BEGIN"),
            "the key must not be echoed: {detail}"
        );
    }
    let response = app
        .client
        .post(app.url(&format!("/api/agents/{name}/ssh-access")))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // The bounds themselves are accepted, and so is an empty body.
    for ttl in [0.1, 24.0] {
        let (status, body) = grant(&app, &app.admin, &name, json!({"ttl_hours": ttl})).await;
        assert_eq!(status, StatusCode::OK, "ttl {ttl}: {body}");
    }
    let response = app
        .client
        .post(app.url(&format!("/api/agents/{name}/ssh-access")))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn owners_may_grant_and_strangers_see_nothing() {
    let app = spawn().await;
    let owner = app
        .user_token(&app.admin, &format!("{}@example.com", unique("owner")))
        .await;
    let stranger = app
        .user_token(&app.admin, &format!("{}@example.com", unique("stranger")))
        .await;
    let name = unique("mine");
    app.create_small(&owner, &name).await;

    let (status, body) = grant(&app, &stranger, &name, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let response = app.revoke_ssh(&stranger, &name).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, body) = grant(&app, &app.admin, "no-such-agent", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = grant(&app, &owner, &name, json!({"ttl_hours": 0.5})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = app.revoke_ssh(&owner, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    let anonymous = app
        .client
        .post(app.url(&format!("/api/agents/{name}/ssh-access")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// The host key a server presents on `port`, as `ssh-keyscan` prints it.
fn host_key(port: u16) -> String {
    let out = std::process::Command::new("ssh-keyscan")
        .args([
            "-T",
            "10",
            "-t",
            "ed25519",
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = text
        .lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap_or_else(|| panic!("no host key on {port}: {text}"));
    key.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn keys_and_the_host_key_survive_a_kill_9() {
    let instance = unique("ssh-durable");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let ports = free_port_block(4);
    let range = format!("{}-{}", ports.start(), ports.end());
    let env = [("FLOTILLA_SSH_PORTS", range.as_str())];
    let mut server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    let api = server.api.clone();
    let admin = api.admin_token().await;
    let name = unique("lasting");
    api.create_small(&admin, &name).await;
    let response = api.grant_ssh(&admin, &name, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let access: Value = response.json().await.unwrap();
    let port = port_of(&access);
    let keys = tempfile::tempdir().unwrap();
    let key = save_key(keys.path(), "k", access["private_key"].as_str().unwrap());
    assert_eq!(ssh(&key, port, "echo one").await.stdout, "one\n");
    let presented = host_key(port);
    let host_key_file = data.path().join("ssh_host_ed25519_key");
    let mode = std::fs::metadata(&host_key_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "host key mode {mode:o}");

    server.kill9();
    let server = ServerProcess::start_with_env(&instance, data.path(), &env).await;
    // Listening again at start-up, with the same host key, for the same key.
    let out = ssh(&key, port, "echo two").await;
    assert_eq!(out.stdout, "two\n", "stderr: {}", out.stderr);
    assert_eq!(host_key(port), presented);
    let response = server.api.revoke_ssh(&admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(port_is_closed(port).await || refused(&key, port).await);
}
