//! Workspace files over real HTTP and real Docker: the tree, byte-exact downloads, confinement to
//! `/home/developer` (traversal, absolute paths, symbolic links), stopped agents, limits and
//! access.

use std::process::Command;

use reqwest::{StatusCode, header};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, unique};

/// Run a shell command inside the agent's container as its user; fail the test if it fails.
fn exec(name: &str, script: &str) -> Vec<u8> {
    let out = Command::new("docker")
        .args(["exec", &format!("agent-{name}"), "sh", "-c", script])
        .output()
        .expect("docker exec");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `path` percent-encoded as a query value.
fn query(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn tree(app: &TestApp, token: &str, name: &str, params: &str) -> (StatusCode, Value) {
    let response = app
        .get(token, &format!("/api/agents/{name}/files{params}"))
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn download(app: &TestApp, token: &str, name: &str, raw_query: &str) -> reqwest::Response {
    app.get(
        token,
        &format!("/api/agents/{name}/files/download?path={raw_query}"),
    )
    .await
}

/// Assert a JSON error with `detail`; return the raw body for further checks.
async fn expect_error(response: reqwest::Response, expected: StatusCode, context: &str) -> String {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, expected, "{context}: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{context}: error is not JSON ({e}): {text}"));
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{context}: no detail in {text}"
    );
    text
}

/// The entry at workspace-relative `path` in a tree, searching every level.
fn find<'a>(entries: &'a Value, path: &str) -> Option<&'a Value> {
    for entry in entries.as_array()? {
        if entry["path"] == path {
            return Some(entry);
        }
        if let Some(found) = find(&entry["children"], path) {
            return Some(found);
        }
    }
    None
}

fn count(entries: &Value) -> usize {
    entries.as_array().map_or(0, |list| {
        list.iter().map(|e| 1 + count(&e["children"])).sum()
    })
}

#[tokio::test]
async fn tree_lists_files_written_in_the_container_with_their_sizes() {
    let app = TestApp::spawn().await;
    let name = unique("files-tree");
    app.create_small(&app.admin, &name).await;
    exec(
        &name,
        "cd ~ && mkdir -p project/src && printf 'hello' > notes.txt \
         && head -c 1234 /dev/zero > project/src/data.bin && ln -s /etc etc-link",
    );

    let (status, body) = tree(&app, &app.admin, &name, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent_name"], name);
    assert_eq!(body["path"], "");
    assert_eq!(body["truncated"], false);
    let entries = &body["tree"];
    assert_eq!(body["entry_count"].as_u64(), Some(count(entries) as u64));

    let notes = find(entries, "notes.txt").expect("notes.txt listed");
    assert_eq!(notes["name"], "notes.txt");
    assert_eq!(notes["type"], "file");
    assert_eq!(notes["size"], 5);
    assert!(
        notes["modified"].as_str().is_some_and(|m| m.ends_with('Z')),
        "{notes}"
    );
    let project = find(entries, "project").expect("project listed");
    assert_eq!(project["type"], "directory");
    assert!(project["children"].is_array());
    let data = find(entries, "project/src/data.bin").expect("nested file listed");
    assert_eq!(data["type"], "file");
    assert_eq!(data["size"], 1234);
    let link = find(entries, "etc-link").expect("symlink listed");
    assert_eq!(link["type"], "symlink");
    assert!(
        find(entries, "etc-link/passwd").is_none(),
        "links are not followed"
    );

    // A subtree, named relative or absolute; paths stay relative to the workspace.
    for path in ["project", "/home/developer/project", "project/src/.."] {
        let (status, sub) = tree(&app, &app.admin, &name, &format!("?path={}", query(path))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {sub}");
        assert_eq!(sub["path"], "project");
        let data = find(&sub["tree"], "project/src/data.bin").expect("data.bin in subtree");
        assert_eq!(data["size"], 1234);
        assert!(find(&sub["tree"], "notes.txt").is_none());
    }

    // Depth 1 lists the top level only; directories there carry no children.
    let (status, shallow) = tree(&app, &app.admin, &name, "?depth=1").await;
    assert_eq!(status, StatusCode::OK);
    let project = find(&shallow["tree"], "project").expect("project");
    assert!(project.get("children").is_none(), "{project}");
    assert!(find(&shallow["tree"], "project/src").is_none());
}

#[tokio::test]
async fn tree_truncates_at_the_limit_and_checks_its_parameters() {
    let app = TestApp::spawn().await;
    let name = unique("files-limit");
    app.create_small(&app.admin, &name).await;
    exec(
        &name,
        "cd ~ && mkdir many && for i in $(seq 1 40); do echo $i > many/f$i; done",
    );

    let (status, body) = tree(&app, &app.admin, &name, "?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["truncated"], true);
    assert_eq!(body["entry_count"], 5);
    assert_eq!(count(&body["tree"]), 5);

    let (status, body) = tree(&app, &app.admin, &name, "?path=many&limit=100").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["truncated"], false);
    assert_eq!(body["entry_count"], 40);

    for params in [
        "?depth=0",
        "?depth=33",
        "?limit=0",
        "?limit=20001",
        "?depth=abc",
        "?path=..",
        "?path=%2Fetc",
        "?path=many%2Ff1",
    ] {
        let response = app
            .get(&app.admin, &format!("/api/agents/{name}/files{params}"))
            .await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, params).await;
    }
    let response = app
        .get(&app.admin, &format!("/api/agents/{name}/files?path=nope"))
        .await;
    expect_error(response, StatusCode::NOT_FOUND, "missing directory").await;
}

#[tokio::test]
async fn download_returns_the_exact_bytes_with_download_headers() {
    let app = TestApp::spawn().await;
    let name = unique("files-dl");
    app.create_small(&app.admin, &name).await;
    exec(
        &name,
        "cd ~ && mkdir -p out && head -c 100000 /dev/urandom > out/random.bin \
         && printf '{\"a\": 1}' > 'out/my \"report\" ü.json' && : > empty.txt \
         && ln -s out/random.bin inner-link",
    );
    let expected = exec(&name, "cat ~/out/random.bin");
    assert_eq!(expected.len(), 100_000);

    let response = download(&app, &app.admin, &name, "out/random.bin").await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(headers[header::CONTENT_LENGTH], "100000");
    assert_eq!(
        headers[header::CONTENT_DISPOSITION],
        r#"attachment; filename="random.bin""#
    );
    let bytes = response.bytes().await.expect("body");
    assert_eq!(Sha256::digest(&bytes), Sha256::digest(&expected));

    // An absolute path inside the workspace, and a link that stays inside it, are fine.
    for path in [
        "/home/developer/out/random.bin",
        "inner-link",
        "out/../out/random.bin",
    ] {
        let response = download(&app, &app.admin, &name, &query(path)).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.bytes().await.expect("body").as_ref(),
            expected.as_slice()
        );
    }

    // A name that needs quoting; the type comes from the extension.
    let response = download(&app, &app.admin, &name, &query("out/my \"report\" ü.json")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let disposition = response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .expect("ascii header")
        .to_string();
    assert!(
        disposition.starts_with(r#"attachment; filename="my _report_ _.json""#),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''my%20%22report%22%20%C3%BC.json"),
        "{disposition}"
    );
    assert_eq!(response.text().await.expect("body"), r#"{"a": 1}"#);

    let response = download(&app, &app.admin, &name, "empty.txt").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "0");
    assert!(response.bytes().await.expect("body").is_empty());

    let response = download(&app, &app.admin, &name, "out").await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "a directory").await;
    let response = download(&app, &app.admin, &name, "").await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "the workspace").await;
    let response = download(&app, &app.admin, &name, "out/missing.bin").await;
    expect_error(response, StatusCode::NOT_FOUND, "a missing file").await;
    let response = download(&app, &app.admin, &name, "out/random.bin/x").await;
    expect_error(
        response,
        StatusCode::NOT_FOUND,
        "a file used as a directory",
    )
    .await;
    let response = app
        .get(&app.admin, &format!("/api/agents/{name}/files/download"))
        .await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "no path").await;
}

#[tokio::test]
async fn download_never_leaves_the_workspace() {
    let app = TestApp::spawn().await;
    let name = unique("files-escape");
    app.create_small(&app.admin, &name).await;
    exec(
        &name,
        "cd ~ && mkdir -p sub && ln -s /etc etc-link && ln -s /etc/passwd passwd-link \
         && ln -s ../../etc/passwd rel-link && ln -s ../../../etc sub/up-link \
         && ln -s loop-b loop-a && ln -s loop-a loop-b",
    );
    let passwd = String::from_utf8(exec(&name, "cat /etc/passwd")).expect("utf-8");
    assert!(!passwd.is_empty());

    let attempts: &[(&str, StatusCode)] = &[
        ("../../etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("..%2F..%2Fetc%2Fpasswd", StatusCode::UNPROCESSABLE_ENTITY),
        ("%2e%2e/%2e%2e/etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("sub/../../../etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("/etc/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("%2Fetc%2Fpasswd", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "/home/developer/../../etc/passwd",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/home/developerx/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("etc-link/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("etc-link", StatusCode::UNPROCESSABLE_ENTITY),
        ("passwd-link", StatusCode::UNPROCESSABLE_ENTITY),
        ("rel-link", StatusCode::UNPROCESSABLE_ENTITY),
        ("sub/up-link/passwd", StatusCode::UNPROCESSABLE_ENTITY),
        ("loop-a", StatusCode::UNPROCESSABLE_ENTITY),
        ("notes%00.txt", StatusCode::UNPROCESSABLE_ENTITY),
        ("a%0Ab", StatusCode::UNPROCESSABLE_ENTITY),
        // Encoded twice: decoded once, it is a literal file name that does not exist.
        (
            "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (raw, expected) in attempts {
        let response = download(&app, &app.admin, &name, raw).await;
        let text = expect_error(response, *expected, raw).await;
        assert!(!text.contains("root:"), "{raw} leaked /etc/passwd: {text}");
    }
    // The listing refuses the same escapes.
    for raw in ["etc-link", "..%2F..", "%2Fetc"] {
        let response = app
            .get(&app.admin, &format!("/api/agents/{name}/files?path={raw}"))
            .await;
        let text = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, raw).await;
        assert!(!text.contains("passwd"), "{raw}: {text}");
    }
}

#[tokio::test]
async fn files_and_download_work_on_a_stopped_agent() {
    let app = TestApp::spawn().await;
    let name = unique("files-stopped");
    app.create_small(&app.admin, &name).await;
    exec(
        &name,
        "mkdir -p ~/kept && printf 'still here' > ~/kept/file.txt",
    );
    let response = app.stop_agent(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.status_of(&app.admin, &name).await, "stopped");

    let (status, body) = tree(&app, &app.admin, &name, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let file = find(&body["tree"], "kept/file.txt").expect("listed while stopped");
    assert_eq!(file["size"], 10);

    let response = download(&app, &app.admin, &name, "kept/file.txt").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "still here");
}

#[tokio::test]
async fn other_users_cannot_see_an_agents_files() {
    let app = TestApp::spawn().await;
    let name = unique("files-private");
    app.create_small(&app.admin, &name).await;
    exec(&name, "printf 'secret' > ~/secret.txt");
    let stranger = app
        .user_token(&app.admin, &format!("{}@example.com", unique("stranger")))
        .await;

    let response = app
        .get(&stranger, &format!("/api/agents/{name}/files"))
        .await;
    let text = expect_error(response, StatusCode::NOT_FOUND, "tree as a stranger").await;
    assert!(!text.contains("secret.txt"));
    let response = download(&app, &stranger, &name, "secret.txt").await;
    let text = expect_error(response, StatusCode::NOT_FOUND, "download as a stranger").await;
    assert!(!text.contains("secret"), "{text}");

    // Unknown agents look the same.
    let response = download(&app, &app.admin, "no-such-agent", "secret.txt").await;
    expect_error(response, StatusCode::NOT_FOUND, "unknown agent").await;
    // No token, no files.
    let response = app
        .client
        .get(app.url(&format!("/api/agents/{name}/files")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_container_removed_outside_flotilla_is_a_conflict_not_a_missing_file() {
    let app = TestApp::spawn().await;
    let name = unique("files-gone");
    app.create_small(&app.admin, &name).await;
    let removed = Command::new("docker")
        .args(["rm", "-f", &format!("agent-{name}")])
        .output()
        .expect("docker rm");
    assert!(removed.status.success());

    let response = app
        .get(&app.admin, &format!("/api/agents/{name}/files"))
        .await;
    let text = expect_error(response, StatusCode::CONFLICT, "tree without a container").await;
    assert!(text.contains("no container"), "{text}");
    let response = download(&app, &app.admin, &name, "CLAUDE.md").await;
    expect_error(
        response,
        StatusCode::CONFLICT,
        "download without a container",
    )
    .await;

    // Starting recreates the container, and the workspace (a volume) is still there.
    let response = app.start_agent(&app.admin, &name).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = tree(&app, &app.admin, &name, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
