//! Credentials: the per-agent vault, injected for real into agents' workspaces (running,
//! stopped, read-only), re-injected at start, exported and imported as age bundles, confined to
//! the workspace, owner/admin only, and never on disk in the clear.

use std::collections::BTreeMap;

use age::secrecy::ExposeSecret;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Api, DockerCleanup, ServerProcess, TestApp, inspect, unique};

/// Run a shell script in the agent's container as its user; (success, stdout + stderr).
fn sh(agent: &str, script: &str) -> (bool, String) {
    let out = std::process::Command::new("docker")
        .args(["exec", &format!("agent-{agent}"), "sh", "-c", script])
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A file of the agent's home, as the agent sees it.
fn cat(agent: &str, path: &str) -> String {
    let (ok, text) = sh(agent, &format!("cat ~/'{path}'"));
    assert!(ok, "cat {path}: {text}");
    text
}

/// `mode uid` of a file of the agent's home.
fn mode_and_owner(agent: &str, path: &str) -> String {
    let (ok, text) = sh(agent, &format!("stat -c '%a %u' ~/'{path}'"));
    assert!(ok, "stat {path}: {text}");
    text.trim().to_string()
}

fn exists(agent: &str, path: &str) -> bool {
    sh(agent, &format!("test -e ~/'{path}'")).0
}

fn path(name: &str, action: &str) -> String {
    format!("/api/agents/{name}/credentials/{action}")
}

async fn call(
    api: &Api,
    token: &str,
    name: &str,
    action: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let response = if action == "status" {
        api.get(token, &path(name, action)).await
    } else {
        api.post(token, &path(name, action), body).await
    };
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn inject(api: &Api, token: &str, name: &str, files: Value) -> Value {
    let (status, body) = call(api, token, name, "inject", Some(json!({ "files": files }))).await;
    assert_eq!(status, StatusCode::OK, "inject: {body}");
    body
}

async fn status_of(api: &Api, token: &str, name: &str) -> Value {
    let (status, body) = call(api, token, name, "status", None).await;
    assert_eq!(status, StatusCode::OK, "status: {body}");
    body
}

async fn start(api: &Api, token: &str, name: &str) -> Value {
    let response = api.start_agent(token, name).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn stop(api: &Api, token: &str, name: &str) {
    assert_eq!(api.stop_agent(token, name).await.status(), StatusCode::OK);
}

/// The error `detail` of a response, asserting its status.
fn detail(status: StatusCode, body: &Value, expected: StatusCode, context: &str) -> String {
    assert_eq!(status, expected, "{context}: {body}");
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: no detail in {body}"));
    assert!(!detail.is_empty(), "{context}");
    detail.to_string()
}

#[tokio::test]
async fn injected_files_are_private_to_the_developer_and_counted_in_status() {
    let app = TestApp::spawn().await;
    let name = unique("cred");
    app.create_small(&app.admin, &name).await;

    let env = "# service keys\nANTHROPIC_API_KEY=sk-ant-test-1\nexport OTHER_KEY=x\n\nnot a key\nEMPTY=\n";
    let body = inject(
        &app,
        &app.admin,
        &name,
        json!({
            ".env": env,
            "/home/developer/.claude/.credentials.json": "{\"claudeAiOauth\":{\"accessToken\":\"tok\"}}",
            "tools/deep/config.toml": "token = \"abc\"\n",
        }),
    )
    .await;
    assert_eq!(body["agent_name"], name.as_str());
    assert_eq!(
        body["files_written"],
        json!([
            ".claude/.credentials.json",
            ".env",
            "tools/deep/config.toml"
        ])
    );
    assert_eq!(body["vault_files"], 3);
    assert_eq!(body["source"], "request");

    for file in [
        ".env",
        ".claude/.credentials.json",
        "tools/deep/config.toml",
    ] {
        assert_eq!(mode_and_owner(&name, file), "600 1000", "{file}");
    }
    assert_eq!(cat(&name, ".env"), env);

    let status = status_of(&app, &app.admin, &name).await;
    assert_eq!(status["agent_name"], name.as_str());
    assert_eq!(status["credential_count"], 3, "{status}");
    let files = status["files"].as_object().unwrap();
    let listed: Vec<&String> = files.keys().collect();
    assert_eq!(
        listed,
        vec![
            ".claude/.credentials.json",
            ".env",
            ".mcp.json",
            "tools/deep/config.toml"
        ]
    );
    assert_eq!(files[".env"]["exists"], true);
    assert_eq!(files[".env"]["size"], env.len());
    assert!(files[".env"]["modified"].is_string(), "{status}");
    assert_eq!(
        files[".mcp.json"],
        json!({"exists": false, "size": null, "modified": null})
    );
    let text = status.to_string();
    assert!(
        !text.contains("sk-ant-test-1") && !text.contains("accessToken"),
        "{text}"
    );

    // A second injection merges: same path replaced, new path added.
    let body = inject(
        &app,
        &app.admin,
        &name,
        json!({".env": "A=1\n", ".mcp.json": "{}"}),
    )
    .await;
    assert_eq!(body["files_written"], json!([".env", ".mcp.json"]));
    assert_eq!(body["vault_files"], 4);
    let status = status_of(&app, &app.admin, &name).await;
    assert_eq!(status["credential_count"], 1);
    assert_eq!(status["files"][".mcp.json"]["exists"], true);

    // Status reads a stopped agent too.
    stop(&app, &app.admin, &name).await;
    let stopped = status_of(&app, &app.admin, &name).await;
    assert_eq!(stopped["files"], status["files"]);
    assert_eq!(stopped["credential_count"], 1);
}

#[tokio::test]
async fn an_agent_with_an_empty_vault_starts_with_skipped() {
    let app = TestApp::spawn().await;
    let name = unique("empty");
    app.create_small(&app.admin, &name).await;
    stop(&app, &app.admin, &name).await;
    let body = start(&app, &app.admin, &name).await;
    assert_eq!(body["credentials_injection"], "skipped", "{body}");
    assert_eq!(body["started"], true);
    // Already running: nothing to do.
    let body = start(&app, &app.admin, &name).await;
    assert_eq!(body["credentials_injection"], "skipped", "{body}");
    assert_eq!(body["started"], false);
}

#[tokio::test]
async fn credentials_are_reinjected_when_the_container_is_recreated() {
    let app = TestApp::spawn().await;
    let name = unique("recreate");
    app.create_small(&app.admin, &name).await;
    let secret = "TOKEN=survives-recreation\n";
    inject(
        &app,
        &app.admin,
        &name,
        json!({".env": secret, ".config/gh/hosts.yml": "oauth: x\n"}),
    )
    .await;
    let before = inspect(&format!("agent-{name}"))["Id"]
        .as_str()
        .unwrap()
        .to_string();

    // The agent loses its copy; the vault keeps it.
    let (ok, out) = sh(&name, "rm ~/.env ~/.config/gh/hosts.yml");
    assert!(ok, "{out}");
    stop(&app, &app.admin, &name).await;
    let response = app
        .put(
            &app.admin,
            &format!("/api/agents/{name}/read-only"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = start(&app, &app.admin, &name).await;
    assert_eq!(body["credentials_injection"], "success", "{body}");
    let after = inspect(&format!("agent-{name}"))["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(before, after, "the container was recreated");
    assert_eq!(cat(&name, ".env"), secret);
    assert_eq!(cat(&name, ".config/gh/hosts.yml"), "oauth: x\n");
    assert_eq!(mode_and_owner(&name, ".env"), "600 1000");
    // The workspace is read-only for the agent itself.
    assert!(!sh(&name, "touch ~/new-file").0);
    let status = status_of(&app, &app.admin, &name).await;
    assert_eq!(status["files"][".env"]["exists"], true);
    assert_eq!(status["credential_count"], 1);
}

#[tokio::test]
async fn injection_works_while_the_workspace_is_read_only() {
    let app = TestApp::spawn().await;
    let name = unique("rocred");
    app.create_small(&app.admin, &name).await;
    let response = app
        .put(
            &app.admin,
            &format!("/api/agents/{name}/read-only"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.status_of(&app.admin, &name).await, "running");
    assert!(!sh(&name, "touch ~/probe").0, "the workspace is read-only");

    let body = inject(
        &app,
        &app.admin,
        &name,
        json!({".env": "RO_KEY=1\n", "keys/id": "k"}),
    )
    .await;
    assert_eq!(body["files_written"], json!([".env", "keys/id"]));
    assert_eq!(cat(&name, ".env"), "RO_KEY=1\n");
    assert_eq!(mode_and_owner(&name, ".env"), "600 1000");
    assert_eq!(mode_and_owner(&name, "keys/id"), "600 1000");
    assert_eq!(app.status_of(&app.admin, &name).await, "running");
    assert_eq!(
        status_of(&app, &app.admin, &name).await["credential_count"],
        1
    );
}

#[tokio::test]
async fn a_passphrase_bundle_restores_the_vault_into_a_new_agent_of_the_same_name() {
    let app = TestApp::spawn().await;
    let name = unique("export");
    app.create_small(&app.admin, &name).await;
    let files = json!({
        ".env": "A=1\nB=2\n",
        ".claude/.credentials.json": "{\"k\": \"v\"}",
        "bin/tool.cfg": "x = 1",
    });
    inject(&app, &app.admin, &name, files.clone()).await;

    let passphrase = "correct horse battery staple";
    let started = std::time::Instant::now();
    let (status, export) = call(
        &app,
        &app.admin,
        &name,
        "export",
        Some(json!({"passphrase": passphrase})),
    )
    .await;
    let export_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["agent_name"], name.as_str());
    assert_eq!(export["format"], "age-armor");
    assert_eq!(export["encrypted_to"], "passphrase");
    assert_eq!(
        export["files"],
        json!([".claude/.credentials.json", ".env", "bin/tool.cfg"])
    );
    let bundle = export["bundle"].as_str().unwrap().to_string();
    assert!(
        bundle.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{bundle}"
    );
    assert!(
        bundle
            .trim_end()
            .ends_with("-----END AGE ENCRYPTED FILE-----")
    );
    assert!(!bundle.contains("A=1"));

    assert_eq!(
        app.delete_agent(&app.admin, &name).await.status(),
        StatusCode::OK
    );
    app.create_small(&app.admin, &name).await;
    assert!(
        !exists(&name, ".env"),
        "a new agent starts with an empty workspace"
    );
    // The new agent's vault is empty: the old one went with the old agent.
    let (status, body) = call(&app, &app.admin, &name, "export", Some(json!({}))).await;
    detail(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "export of an empty vault",
    );

    // A wrong passphrase changes nothing.
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "import",
        Some(json!({"bundle": bundle, "passphrase": "wrong horse battery staple"})),
    )
    .await;
    let text = detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "wrong passphrase",
    );
    assert!(text.starts_with("passphrase"), "{text}");
    assert!(!exists(&name, ".env") && !exists(&name, "bin/tool.cfg"));
    let (status, _) = call(&app, &app.admin, &name, "export", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the vault is still empty");
    // So does no key at all (the bundle is not sealed for this server).
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "import",
        Some(json!({"bundle": bundle})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "passphrase bundle without a passphrase",
    );

    let started = std::time::Instant::now();
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "import",
        Some(json!({"bundle": bundle, "passphrase": passphrase})),
    )
    .await;
    let import_time = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "bundle");
    assert_eq!(body["vault_files"], 3);
    for (file, content) in files.as_object().unwrap() {
        assert_eq!(cat(&name, file), content.as_str().unwrap(), "{file}");
        assert_eq!(mode_and_owner(&name, file), "600 1000");
    }
    eprintln!("passphrase export took {export_time:?}, import {import_time:?}");
    // And the vault is back: it survives the next start.
    let (ok, out) = sh(&name, "rm ~/.env");
    assert!(ok, "{out}");
    stop(&app, &app.admin, &name).await;
    assert_eq!(
        start(&app, &app.admin, &name).await["credentials_injection"],
        "success"
    );
    assert_eq!(cat(&name, ".env"), "A=1\nB=2\n");
}

#[tokio::test]
async fn bundles_sealed_for_an_age_recipient_open_with_its_identity_only() {
    let app = TestApp::spawn().await;
    let source = unique("src");
    let target = unique("dst");
    app.create_small(&app.admin, &source).await;
    app.create_small(&app.admin, &target).await;
    let secret = "AGE_TEST_KEY=recipient\n";
    inject(&app, &app.admin, &source, json!({".env": secret})).await;

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let (status, export) = call(
        &app,
        &app.admin,
        &source,
        "export",
        Some(json!({"recipient": recipient})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["encrypted_to"], "recipient");
    let bundle = export["bundle"].as_str().unwrap().to_string();

    // The bundle is a real age file: the identity opens it outside flotilla too.
    let decrypted = age::decrypt(&identity, &{
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut age::armor::ArmoredReader::new(bundle.as_bytes()),
            &mut out,
        )
        .unwrap();
        out
    })
    .unwrap();
    let payload: Value = serde_json::from_slice(&decrypted).unwrap();
    assert_eq!(payload["agent_name"], source.as_str());
    assert_eq!(payload["files"][0]["path"], ".env");

    let other = age::x25519::Identity::generate();
    for (key, field) in [
        (
            json!({"identity": other.to_string().expose_secret()}),
            "identity",
        ),
        (json!({}), "bundle"),
        (json!({"identity": "AGE-SECRET-KEY-1NOTAKEY"}), "identity"),
        (json!({"passphrase": "some passphrase"}), "passphrase"),
    ] {
        let mut body = key.clone();
        body["bundle"] = json!(bundle);
        let (status, response) = call(&app, &app.admin, &target, "import", Some(body)).await;
        let text = detail(
            status,
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            &key.to_string(),
        );
        assert!(text.starts_with(field), "{key}: {text}");
        assert!(!text.contains("NOTAKEY"), "{text}");
    }
    assert!(!exists(&target, ".env"));

    let (status, body) = call(
        &app,
        &app.admin,
        &target,
        "import",
        Some(json!({"bundle": bundle, "identity": identity.to_string().expose_secret()})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cat(&target, ".env"), secret);

    // With neither, the bundle is sealed for this server: a same-server backup.
    let (status, export) = call(&app, &app.admin, &source, "export", None).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["encrypted_to"], "server");
    let third = unique("third");
    app.create_small(&app.admin, &third).await;
    let (status, body) = call(
        &app,
        &app.admin,
        &third,
        "import",
        Some(json!({"bundle": export["bundle"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cat(&third, ".env"), secret);

    // Both keys at once is a client error, as is a bad recipient.
    let (status, body) = call(
        &app,
        &app.admin,
        &source,
        "export",
        Some(json!({"passphrase": "long enough", "recipient": recipient})),
    )
    .await;
    detail(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "two keys");
    let (status, body) = call(
        &app,
        &app.admin,
        &source,
        "export",
        Some(json!({"recipient": "age1nope"})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "bad recipient",
    );
    let (status, body) = call(
        &app,
        &app.admin,
        &source,
        "export",
        Some(json!({"passphrase": "short"})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "short passphrase",
    );
}

#[tokio::test]
async fn a_tampered_bundle_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let name = unique("tamper");
    app.create_small(&app.admin, &name).await;
    inject(&app, &app.admin, &name, json!({".env": "ORIGINAL=1\n"})).await;
    let (status, export) = call(&app, &app.admin, &name, "export", None).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let bundle = export["bundle"].as_str().unwrap();

    // Change a file's content through a bundle of the same shape sealed for this server, then
    // alter one character of it: header, payload and armor damage are all refused.
    let mut lines: Vec<String> = bundle.lines().map(str::to_string).collect();
    for line in [1, lines.len() / 2, lines.len() - 2] {
        let mut altered = lines.clone();
        let text = &mut altered[line];
        let at = text.len() / 2;
        let c = text.remove(at);
        text.insert(at, if c == 'A' { 'B' } else { 'A' });
        let (status, body) = call(
            &app,
            &app.admin,
            &name,
            "import",
            Some(json!({"bundle": altered.join("\n")})),
        )
        .await;
        let text = detail(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("line {line}"),
        );
        assert!(text.starts_with("bundle"), "{text}");
    }
    lines.truncate(lines.len() - 3);
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "import",
        Some(json!({"bundle": lines.join("\n")})),
    )
    .await;
    detail(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "truncated");
    for junk in [
        json!({"bundle": "not a bundle"}),
        json!({"bundle": ""}),
        json!({}),
    ] {
        let (status, body) = call(&app, &app.admin, &name, "import", Some(junk.clone())).await;
        detail(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            &junk.to_string(),
        );
    }
    assert_eq!(cat(&name, ".env"), "ORIGINAL=1\n");
    let (_, again) = call(&app, &app.admin, &name, "export", None).await;
    assert_eq!(again["files"], json!([".env"]));
}

#[tokio::test]
async fn bad_paths_and_oversized_files_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let name = unique("badpath");
    app.create_small(&app.admin, &name).await;
    let (ok, out) = sh(&name, "mkdir -p ~/a-folder && echo x > ~/plain-file");
    assert!(ok, "{out}");

    let unprocessable = [
        json!({"../escape": "x"}),
        json!({"/etc/passwd": "x"}),
        json!({"a/../../etc/x": "x"}),
        json!({"/home/developer/../root/x": "x"}),
        json!({"ok.txt": "x", "bad\nname": "x"}),
        json!({"nul\u{0}": "x"}),
        json!({"": "x"}),
        json!({"/home/developer": "x"}),
        json!({".claude": "x"}),
        json!({"a": "x", "a/b": "y"}),
        json!({"dup": "x", "./dup": "y"}),
        json!({"a-folder": "x"}),
        json!({"plain-file/inside": "x"}),
        json!({"ok.txt": 5}),
        json!({}),
    ];
    for files in unprocessable {
        let (status, body) = call(
            &app,
            &app.admin,
            &name,
            "inject",
            Some(json!({ "files": files })),
        )
        .await;
        detail(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            &files.to_string(),
        );
    }
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "inject",
        Some(json!({"files": "x"})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "files not an object",
    );
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "inject",
        Some(json!({"other": {}})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field",
    );
    // No body and no host directory configured.
    let (status, body) = call(&app, &app.admin, &name, "inject", None).await;
    let text = detail(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no body, no host dir",
    );
    assert!(text.contains("host credentials"), "{text}");

    let quarter = "q".repeat(256 * 1024);
    let too_large = [
        json!({"big": "b".repeat(256 * 1024 + 1)}),
        json!({"f1": quarter, "f2": quarter, "f3": quarter, "f4": quarter, "f5": "x"}),
        Value::Object((0..65).map(|i| (format!("f{i}"), json!("x"))).collect()),
    ];
    for files in too_large {
        let (status, body) = call(
            &app,
            &app.admin,
            &name,
            "inject",
            Some(json!({ "files": files })),
        )
        .await;
        detail(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "too large");
    }
    // A body beyond the route's limit never reaches the handler.
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "inject",
        Some(json!({"files": {"huge": "h".repeat(5 * 1024 * 1024)}})),
    )
    .await;
    detail(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "huge body");

    // Nothing was written, and the vault holds nothing.
    assert!(!exists(&name, "ok.txt") && !exists(&name, "big") && !exists(&name, "f1"));
    assert_eq!(cat(&name, "plain-file"), "x\n");
    let (status, _) = call(&app, &app.admin, &name, "export", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The vault as a whole obeys the limits too.
    let half = "h".repeat(250 * 1024);
    let files: BTreeMap<String, String> = (0..4).map(|i| (format!("v{i}"), half.clone())).collect();
    inject(&app, &app.admin, &name, json!(files)).await;
    let (status, body) = call(
        &app,
        &app.admin,
        &name,
        "inject",
        Some(json!({"files": {"v9": half}})),
    )
    .await;
    detail(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "vault over 1 MiB",
    );
    assert!(!exists(&name, "v9"));
}

#[tokio::test]
async fn concurrent_injections_keep_every_file() {
    let app = TestApp::spawn().await;
    let name = unique("concur");
    app.create_small(&app.admin, &name).await;
    let requests = (0..6).map(|i| {
        let api = app.api.clone();
        let (token, name) = (app.admin.clone(), name.clone());
        async move {
            inject(
                &api,
                &token,
                &name,
                json!({ format!("f{i}"): format!("K{i}=1") }),
            )
            .await
        }
    });
    futures_util::future::join_all(requests).await;
    let (status, export) = call(&app, &app.admin, &name, "export", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["files"], json!(["f0", "f1", "f2", "f3", "f4", "f5"]));
}

#[tokio::test]
async fn host_credentials_are_injected_when_no_files_are_given() {
    let host = tempfile::tempdir().unwrap();
    let put = |path: &str, content: &str| {
        let path = host.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    put(
        "claude-code/.claude/.credentials.json",
        "{\"claudeAiOauth\":{}}",
    );
    put("common/.env", "HOST_KEY=1\nSECOND=2\n");
    put("gemini-cli/.gemini/oauth_creds.json", "{\"gemini\":true}");
    let dir = host.path().to_path_buf();
    let app = TestApp::spawn_with(move |c| c.host_credentials_dir = Some(dir)).await;

    let name = unique("host");
    app.create_small(&app.admin, &name).await;
    let (status, body) = call(&app, &app.admin, &name, "inject", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "host");
    assert_eq!(
        body["files_written"],
        json!([".claude/.credentials.json", ".env"])
    );
    assert_eq!(
        cat(&name, ".claude/.credentials.json"),
        "{\"claudeAiOauth\":{}}"
    );
    assert_eq!(cat(&name, ".env"), "HOST_KEY=1\nSECOND=2\n");
    assert_eq!(
        mode_and_owner(&name, ".claude/.credentials.json"),
        "600 1000"
    );
    assert_eq!(
        status_of(&app, &app.admin, &name).await["credential_count"],
        2
    );
    // `{}` means the same.
    let (status, body) = call(&app, &app.admin, &name, "inject", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let gemini = unique("hostgem");
    let response = app
        .create_agent(
            &app.admin,
            json!({"name": gemini, "runtime": "gemini-cli", "resources": {"cpu": "0.25", "memory": "128m"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = call(&app, &app.admin, &gemini, "inject", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["files_written"],
        json!([".env", ".gemini/oauth_creds.json"])
    );
    assert_eq!(
        cat(&gemini, ".gemini/oauth_creds.json"),
        "{\"gemini\":true}"
    );
}

#[tokio::test]
async fn strangers_get_404_and_shared_users_403_on_every_credential_endpoint() {
    let app = TestApp::spawn().await;
    let name = unique("private");
    app.create_small(&app.admin, &name).await;
    inject(&app, &app.admin, &name, json!({".env": "OWNER_ONLY=1\n"})).await;
    let stranger = app
        .user_token(&app.admin, &format!("{}@example.com", unique("stranger")))
        .await;
    let shared_email = format!("{}@example.com", unique("shared"));
    let shared = app.user_token(&app.admin, &shared_email).await;
    let response = app
        .post(
            &app.admin,
            &format!("/api/agents/{name}/share"),
            Some(json!({"email": shared_email})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let requests = [
        ("inject", Some(json!({"files": {".env": "STOLEN=1\n"}}))),
        ("status", None),
        ("export", Some(json!({}))),
        ("import", Some(json!({"bundle": "x"}))),
    ];
    for (action, body) in requests {
        let (status, response) = call(&app, &stranger, &name, action, body.clone()).await;
        detail(
            status,
            &response,
            StatusCode::NOT_FOUND,
            &format!("stranger {action}"),
        );
        let (status, response) = call(&app, &shared, &name, action, body).await;
        detail(
            status,
            &response,
            StatusCode::FORBIDDEN,
            &format!("shared {action}"),
        );
    }
    assert_eq!(cat(&name, ".env"), "OWNER_ONLY=1\n");
    let (status, _) = call(&app, &app.admin, "no-such-agent-x", "status", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_data_dir_holds_no_plaintext_secret() {
    let instance = unique("vaultdisk");
    let _cleanup = DockerCleanup {
        instance: instance.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(&instance, data.path()).await;
    let api = server.api.clone();
    let admin = api.admin_token().await;
    let name = unique("disk");
    api.create_small(&admin, &name).await;

    let secret = format!("flotilla-secret-{}", uuid::Uuid::new_v4().simple());
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("KEY={secret}\n"))
    };
    inject(
        &api,
        &admin,
        &name,
        json!({".env": format!("KEY={secret}\n"), "notes/secret.txt": secret}),
    )
    .await;
    // Exercise every path that touches the vault: re-injection at start, status, exports.
    stop(&api, &admin, &name).await;
    assert_eq!(
        start(&api, &admin, &name).await["credentials_injection"],
        "success"
    );
    status_of(&api, &admin, &name).await;
    let (status, _) = call(
        &api,
        &admin,
        &name,
        "export",
        Some(json!({"passphrase": "a long passphrase"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cat(&name, "notes/secret.txt"), secret);

    // The key file exists, readable by its owner only.
    let key = data.path().join("vault-identity.txt");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("AGE-SECRET-KEY-1")
    );

    server.kill9();
    let mut scanned = 0;
    let mut pending = vec![data.path().to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            scanned += bytes.len();
            for needle in [secret.as_bytes(), encoded.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds the secret in the clear",
                    path.display()
                );
            }
        }
    }
    assert!(scanned > 0, "the data dir was scanned");

    // Restarted on the same data dir, the server still opens the vault.
    let server = ServerProcess::start(&instance, data.path()).await;
    let api = server.api.clone();
    let admin = api.admin_token().await;
    let (ok, out) = sh(&name, "rm ~/notes/secret.txt");
    assert!(ok, "{out}");
    stop(&api, &admin, &name).await;
    assert_eq!(
        start(&api, &admin, &name).await["credentials_injection"],
        "success"
    );
    assert_eq!(cat(&name, "notes/secret.txt"), secret);
}

#[tokio::test]
async fn injection_works_on_a_stopped_agent_just_taken_out_of_read_only_mode() {
    // The stopped container still mounts the workspace read-only until its next start.
    let app = TestApp::spawn().await;
    let name = unique("rooff");
    app.create_small(&app.admin, &name).await;
    let read_only = format!("/api/agents/{name}/read-only");
    let response = app
        .put(&app.admin, &read_only, json!({"enabled": true}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    stop(&app, &app.admin, &name).await;
    let response = app
        .put(&app.admin, &read_only, json!({"enabled": false}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let body = inject(&app, &app.admin, &name, json!({".env": "AFTER_RO=1\n"})).await;
    assert_eq!(body["files_written"], json!([".env"]));
    assert_eq!(
        status_of(&app, &app.admin, &name).await["credential_count"],
        1
    );
    assert_eq!(
        start(&app, &app.admin, &name).await["credentials_injection"],
        "success"
    );
    assert_eq!(cat(&name, ".env"), "AFTER_RO=1\n");
    assert!(sh(&name, "touch ~/writable-again").0);
}

#[tokio::test]
async fn start_restores_missing_credentials_but_keeps_ones_the_runtime_refreshed() {
    let app = TestApp::spawn().await;
    let name = unique("rotate");
    app.create_small(&app.admin, &name).await;
    inject(
        &app,
        &app.admin,
        &name,
        json!({".claude/.credentials.json": "{\"token\":\"v1\"}", ".env": "KEY=1\n"}),
    )
    .await;
    // The runtime rotates its token; a user deletes .env.
    assert!(
        sh(
            &name,
            r#"printf '{"token":"v2"}' > ~/.claude/.credentials.json && rm ~/.env"#
        )
        .0
    );
    stop(&app, &app.admin, &name).await;
    let started = start(&app, &app.admin, &name).await;
    assert_eq!(started["credentials_injection"], "success");
    assert_eq!(
        cat(&name, ".claude/.credentials.json"),
        "{\"token\":\"v2\"}"
    );
    assert_eq!(cat(&name, ".env"), "KEY=1\n");
    assert_eq!(mode_and_owner(&name, ".env"), "600 1000");
}
