//! Sharing, and the access table of DESIGN.md checked over every agent route.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, unique};

fn email(prefix: &str) -> String {
    format!("{}@example.com", unique(prefix))
}

async fn share(app: &TestApp, token: &str, name: &str, with: &str) -> (StatusCode, Value) {
    let response = app
        .post(
            token,
            &format!("/api/agents/{name}/share"),
            Some(json!({ "email": with })),
        )
        .await;
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn unshare(app: &TestApp, token: &str, name: &str, with: &str) -> StatusCode {
    app.delete(token, &format!("/api/agents/{name}/share/{with}"))
        .await
        .status()
}

#[tokio::test]
async fn share_list_unshare_and_reshare() {
    let app = TestApp::spawn().await;
    let owner_email = email("owner");
    let owner = app.user_token(&app.admin, &owner_email).await;
    let friend_email = email("friend");
    let friend = app.user_token(&app.admin, &friend_email).await;
    let name = unique("shared");
    app.create_small(&owner, &name).await;

    assert_eq!(
        app.get_agent(&friend, &name).await.status(),
        StatusCode::NOT_FOUND
    );
    // Emails are case-insensitive.
    let (status, body) = share(&app, &owner, &name, &friend_email.to_uppercase()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent_name"], name);
    assert_eq!(body["shared_with_email"], friend_email);
    assert_eq!(body["shared_by_email"], owner_email);
    assert!(body["id"].is_string() && body["created_at"].is_string());

    // The friend sees it, flagged as shared, and may start and stop it.
    let list: Value = app.list_agents(&friend).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["is_shared"], true);
    assert_eq!(list[0]["is_owner"], false);
    let detail: Value = app.get_agent(&friend, &name).await.json().await.unwrap();
    assert_eq!(detail["can_share"], false);
    assert!(
        detail.get("shares").is_none(),
        "shares are for the owner: {detail}"
    );
    assert_eq!(
        app.stop_agent(&friend, &name).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.start_agent(&friend, &name).await.status(),
        StatusCode::OK
    );

    // The owner sees the share in the list and in the agent.
    let shares: Value = app
        .get(&owner, &format!("/api/agents/{name}/shares"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shares.as_array().unwrap().len(), 1);
    let detail: Value = app.get_agent(&owner, &name).await.json().await.unwrap();
    assert_eq!(detail["shares"][0]["shared_with_email"], friend_email);

    // Duplicates, yourself, bad emails.
    assert_eq!(
        share(&app, &owner, &name, &friend_email).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        share(&app, &owner, &name, &owner_email).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        share(&app, &owner, &name, "not-an-email").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Unshare: gone for the friend at once; a second unshare is 404; re-share works.
    assert_eq!(
        unshare(&app, &owner, &name, &friend_email).await,
        StatusCode::OK
    );
    assert_eq!(
        app.get_agent(&friend, &name).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.list_agents(&friend)
            .await
            .json::<Value>()
            .await
            .unwrap(),
        json!([])
    );
    assert_eq!(
        unshare(&app, &owner, &name, &friend_email).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        share(&app, &owner, &name, &friend_email).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get_agent(&friend, &name).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_share_before_the_account_exists_takes_effect_when_it_is_created() {
    let app = TestApp::spawn().await;
    let name = unique("early");
    app.create_small(&app.admin, &name).await;
    let later = email("later");
    assert_eq!(
        share(&app, &app.admin, &name, &later).await.0,
        StatusCode::OK
    );
    let token = app.user_token(&app.admin, &later).await;
    let list: Value = app.list_agents(&token).await.json().await.unwrap();
    assert_eq!(list[0]["name"], name);
    assert_eq!(list[0]["is_shared"], true);
}

#[tokio::test]
async fn shares_follow_renames_and_vanish_with_the_agent() {
    let app = TestApp::spawn().await;
    let friend_email = email("friend");
    let friend = app.user_token(&app.admin, &friend_email).await;
    let name = unique("moving");
    app.create_small(&app.admin, &name).await;
    share(&app, &app.admin, &name, &friend_email).await;
    let renamed = unique("moved");
    assert_eq!(
        app.rename_agent(&app.admin, &name, &renamed).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_agent(&friend, &renamed).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.delete_agent(&app.admin, &renamed).await.status(),
        StatusCode::OK
    );
    // A new agent with the old name is not shared.
    app.create_small(&app.admin, &renamed).await;
    assert_eq!(
        app.get_agent(&friend, &renamed).await.status(),
        StatusCode::NOT_FOUND
    );
    let shares: Value = app
        .get(&app.admin, &format!("/api/agents/{renamed}/shares"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shares, json!([]));
}

// ---- the access matrix ---------------------------------------------------------------------

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Owner,
    Shared,
    Stranger,
}

const ROLES: [Role; 4] = [Role::Stranger, Role::Shared, Role::Admin, Role::Owner];

/// What the access table says for a kind of route.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Everyone who can see the agent (shared users too).
    Read,
    /// Start and stop: shared users too.
    Operate,
    /// Owner and admin only.
    Manage,
}

fn expected(rule: Rule, role: Role) -> StatusCode {
    match (rule, role) {
        (_, Role::Stranger) => StatusCode::NOT_FOUND,
        (Rule::Manage, Role::Shared) => StatusCode::FORBIDDEN,
        _ => StatusCode::OK,
    }
}

/// One row per agent route: method, path, body, rule (`{name}` is the agent, `{role}` the
/// caller's role, for rows whose effect must not collide between roles). Routes that destroy
/// or move the agent are in `destructive_routes_follow_the_access_table`.
fn routes() -> Vec<(Method, &'static str, Option<Value>, Rule)> {
    use Method as M;
    use Rule::*;
    vec![
        (M::GET, "/api/agents/{name}", None, Read),
        (M::GET, "/api/agents/{name}/info", None, Read),
        (M::GET, "/api/agents/{name}/files", None, Read),
        (
            M::GET,
            "/api/agents/{name}/files/download?path=hello.txt",
            None,
            Read,
        ),
        (M::GET, "/api/agents/{name}/logs?tail=5", None, Read),
        (M::GET, "/api/agents/{name}/stats", None, Read),
        (M::GET, "/api/agents/{name}/avatar", None, Read),
        (M::GET, "/api/agents/{name}/autonomy", None, Read),
        (M::GET, "/api/agents/{name}/read-only", None, Read),
        (M::GET, "/api/agents/{name}/timeout", None, Read),
        (M::POST, "/api/agents/{name}/stop", None, Operate),
        (M::POST, "/api/agents/{name}/start", None, Operate),
        (
            M::PUT,
            "/api/agents/{name}/autonomy",
            Some(json!({"enabled": true})),
            Manage,
        ),
        (
            M::PUT,
            "/api/agents/{name}/timeout",
            Some(json!({"execution_timeout_seconds": 600})),
            Manage,
        ),
        (
            M::PUT,
            "/api/agents/{name}/read-only",
            Some(json!({"enabled": false})),
            Manage,
        ),
        (M::GET, "/api/agents/{name}/folders", None, Read),
        (M::GET, "/api/agents/{name}/folders/available", None, Read),
        (M::GET, "/api/agents/{name}/folders/consumers", None, Read),
        (
            M::PUT,
            "/api/agents/{name}/folders",
            Some(json!({"expose_enabled": true})),
            Manage,
        ),
        (
            M::GET,
            "/api/agents/{name}/credentials/status",
            None,
            Manage,
        ),
        (
            M::POST,
            "/api/agents/{name}/credentials/inject",
            Some(json!({"files": {"keys/{role}.env": "KEY=1"}})),
            Manage,
        ),
        (
            M::POST,
            "/api/agents/{name}/credentials/export",
            Some(json!({})),
            Manage,
        ),
        (
            M::POST,
            "/api/agents/{name}/ssh-access",
            Some(json!({"ttl_hours": 1})),
            Manage,
        ),
        (M::DELETE, "/api/agents/{name}/ssh-access", None, Manage),
        (M::GET, "/api/agents/{name}/shares", None, Manage),
        (
            M::POST,
            "/api/agents/{name}/share",
            Some(json!({"email": "extra-{role}@example.com"})),
            Manage,
        ),
        (
            M::DELETE,
            "/api/agents/{name}/share/extra-{role}@example.com",
            None,
            Manage,
        ),
    ]
}

struct Cast {
    admin: String,
    owner: String,
    shared: String,
    stranger: String,
}

impl Cast {
    async fn new(app: &TestApp) -> (Self, String) {
        let owner = app.user_token(&app.admin, &email("owner")).await;
        let shared_email = email("shared");
        let shared = app.user_token(&app.admin, &shared_email).await;
        let stranger = app.user_token(&app.admin, &email("stranger")).await;
        (
            Self {
                admin: app.admin.clone(),
                owner,
                shared,
                stranger,
            },
            shared_email,
        )
    }

    fn token(&self, role: Role) -> &str {
        match role {
            Role::Admin => &self.admin,
            Role::Owner => &self.owner,
            Role::Shared => &self.shared,
            Role::Stranger => &self.stranger,
        }
    }
}

async fn call(
    app: &TestApp,
    token: &str,
    method: &Method,
    path: &str,
    body: &Option<Value>,
) -> (StatusCode, String) {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_agent_route_follows_the_access_table() {
    let app = TestApp::spawn_with(|c| {
        c.stats_interval = Duration::from_millis(300);
        c.ssh_ports = crate::helpers::free_port_block(8);
    })
    .await;
    let (cast, shared_email) = Cast::new(&app).await;
    let name = unique("matrix");
    app.create_small(&cast.owner, &name).await;
    assert_eq!(
        share(&app, &cast.owner, &name, &shared_email).await.0,
        StatusCode::OK
    );
    let wrote = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("agent-{name}"),
            "sh",
            "-c",
            "echo hi > ~/hello.txt",
        ])
        .status()
        .unwrap();
    assert!(wrote.success());
    // Stats exist once the sampler has read the agent twice.
    eventually(Duration::from_secs(10), "first stats sample", || async {
        app.get(&cast.owner, &format!("/api/agents/{name}/stats"))
            .await
            .status()
            == StatusCode::OK
    })
    .await;

    let mut failures = Vec::new();
    for (method, template, body, rule) in routes() {
        for role in ROLES {
            let tag = format!("{role:?}").to_lowercase();
            let path = template.replace("{name}", &name).replace("{role}", &tag);
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{role}", &tag)).unwrap());
            let want = expected(rule, role);
            let (got, text) = call(&app, cast.token(role), &method, &path, &body).await;
            if got != want {
                failures.push(format!(
                    "{method} {path} as {role:?}: {got} (want {want}) {text}"
                ));
            }
            if got.is_client_error() && !text.contains("\"detail\"") {
                failures.push(format!("{method} {path} as {role:?}: error without detail"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test]
async fn destructive_routes_follow_the_access_table() {
    let app = TestApp::spawn().await;
    let (cast, shared_email) = Cast::new(&app).await;
    for role in ROLES {
        let name = unique("victim");
        app.create_small(&cast.owner, &name).await;
        share(&app, &cast.owner, &name, &shared_email).await;
        let want = expected(Rule::Manage, role);
        let renamed = unique("renamed");
        let (got, text) = call(
            &app,
            cast.token(role),
            &Method::PUT,
            &format!("/api/agents/{name}/rename"),
            &Some(json!({"new_name": renamed})),
        )
        .await;
        assert_eq!(got, want, "rename as {role:?}: {text}");
        let current = if got == StatusCode::OK {
            &renamed
        } else {
            &name
        };
        let (got, text) = call(
            &app,
            cast.token(role),
            &Method::DELETE,
            &format!("/api/agents/{current}"),
            &None,
        )
        .await;
        assert_eq!(got, want, "delete as {role:?}: {text}");
    }
}
