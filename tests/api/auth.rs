//! Authentication and authorisation over real HTTP: login (form and JSON), every way a bearer
//! token can be refused, logout, user administration, login brute-force limiting, and the rule
//! that another user's agents do not exist for you (404, never 403).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, JWT_SECRET, TestApp, unique};

/// The admin's token version on a fresh store (no password change yet).
const ADMIN_TOKEN_VERSION: i64 = 0;
const USER_PASSWORD: &str = "user-password-1";

/// Assert an error response: the status, and a JSON body with a non-empty string `detail`.
/// Returns the detail.
async fn expect_error(response: Response, status: StatusCode, context: &str) -> String {
    let got = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "{context}: body {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{context}: error body is not JSON ({e}): {text}"));
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: no string `detail` in {body}"));
    assert!(!detail.is_empty(), "{context}: empty detail");
    detail.to_string()
}

/// Assert a 401 that also tells the client which scheme to use.
async fn expect_unauthorized(response: Response, context: &str) -> String {
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let detail = expect_error(response, StatusCode::UNAUTHORIZED, context).await;
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer"),
        "{context}: WWW-Authenticate"
    );
    detail
}

/// Assert a 200 with a JSON body, and return it.
async fn expect_ok(response: Response, context: &str) -> Value {
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{context}: body {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{context}: not JSON ({e}): {text}"))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims shaped exactly like the server's (`src/auth/token.rs` `Claims`).
fn claims(sub: &str, ver: i64, nbf: i64, exp: i64) -> Value {
    json!({
        "sub": sub,
        "iat": nbf,
        "nbf": nbf,
        "exp": exp,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": ver,
        "iss": "flotilla",
        "aud": "flotilla-api",
    })
}

/// Claims that the server would accept for `sub` right now.
fn fresh_claims(sub: &str, ver: i64) -> Value {
    claims(sub, ver, now() - 10, now() + 600)
}

/// An HS256 JWT over `claims`, signed with `secret`.
fn sign(claims: &Value, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("encode")
}

/// Create a user with [`USER_PASSWORD`]; returns the (lower-cased) email and a token.
async fn new_user(app: &TestApp, prefix: &str) -> (String, String) {
    let email = format!("{}@example.com", unique(prefix));
    let token = app.user_token(&app.admin, &email).await;
    (email, token)
}

async fn login_json(app: &TestApp, username: &str, password: &str) -> Response {
    app.client
        .post(app.url("/api/token"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("request")
}

// ---- login ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_with_form_or_json_returns_a_bearer_token_that_works() {
    let app = TestApp::spawn().await;
    for (how, response) in [
        ("form", app.login("admin", ADMIN_PASSWORD).await),
        ("json", login_json(&app, "admin", ADMIN_PASSWORD).await),
    ] {
        let body = expect_ok(response, how).await;
        assert_eq!(body["token_type"], "bearer", "{how}: {body}");
        let token = body["access_token"].as_str().expect("access_token string");
        assert_eq!(token.split('.').count(), 3, "{how}: a JWT: {token}");
        let me = expect_ok(app.get(token, "/api/users/me").await, how).await;
        assert_eq!(me["username"], "admin", "{how}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused_alike() {
    let app = TestApp::spawn().await;
    let (email, _) = new_user(&app, "pw").await;
    let wrong = expect_error(
        app.login(&email, "not-the-password").await,
        StatusCode::UNAUTHORIZED,
        "wrong password",
    )
    .await;
    let admin_wrong = expect_error(
        login_json(&app, "admin", "not-the-password").await,
        StatusCode::UNAUTHORIZED,
        "wrong admin password",
    )
    .await;
    let unknown = expect_error(
        app.login("nobody@example.com", USER_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "unknown user",
    )
    .await;
    // The answer must not reveal which usernames exist.
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, admin_wrong);
}

#[tokio::test]
async fn login_email_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let local = unique("Alice");
    let mixed = format!("{local}@Example.com");
    let lower = mixed.to_lowercase();
    let created = expect_ok(
        app.create_user(&app.admin, &mixed, USER_PASSWORD).await,
        "create",
    )
    .await;
    assert_eq!(created["username"], lower.as_str());
    assert_eq!(created["email"], lower.as_str());
    let token = app.token(&lower, USER_PASSWORD).await;
    let me = expect_ok(app.get(&token, "/api/users/me").await, "me").await;
    assert_eq!(me["username"], lower.as_str());
    // The mixed-case spelling it was created with works too.
    app.token(&mixed, USER_PASSWORD).await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_client_out_with_429_and_retry_after() {
    // One failure regained per minute: nothing is regained during the test.
    let app = TestApp::spawn_with(|c| {
        c.login_burst = 3;
        c.login_per_minute = 1;
    })
    .await;
    for attempt in 1..=3 {
        expect_error(
            app.login("admin", "wrong-password").await,
            StatusCode::UNAUTHORIZED,
            &format!("wrong password #{attempt}"),
        )
        .await;
    }
    let limited = app.login("admin", "wrong-password").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited
        .headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After on 429")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    expect_error(
        limited,
        StatusCode::TOO_MANY_REQUESTS,
        "fourth wrong password",
    )
    .await;
    // During the lockout even the right password is refused, so guessing cannot go on.
    let right = app.login("admin", ADMIN_PASSWORD).await;
    assert!(right.headers().contains_key(header::RETRY_AFTER));
    expect_error(
        right,
        StatusCode::TOO_MANY_REQUESTS,
        "right password while locked",
    )
    .await;
    // Tokens issued before the lockout still work: only login is limited.
    expect_ok(app.get(&app.admin, "/api/users/me").await, "me").await;
}

#[tokio::test]
async fn oversized_login_body_is_413_with_json_detail() {
    let app = TestApp::spawn().await;
    let password = "a".repeat(1024 * 1024 + 1024);
    let response = app.login("admin", &password).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "oversized login").await;
}

// ---- refused tokens ------------------------------------------------------------------------

#[tokio::test]
async fn request_without_token_is_401() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api/users/me"))
        .send()
        .await
        .expect("request");
    expect_unauthorized(response, "no token").await;
}

#[tokio::test]
async fn garbage_and_malformed_authorization_headers_are_401() {
    let app = TestApp::spawn().await;
    for value in [
        "Bearer not-a-jwt".to_string(),
        "Bearer a.b.c".to_string(),
        "Bearer ".to_string(),
        "Bearer".to_string(),
        format!("Basic {}", app.admin),
        app.admin.clone(),
    ] {
        let response = app
            .client
            .get(app.url("/api/users/me"))
            .header(header::AUTHORIZATION, &value)
            .send()
            .await
            .expect("request");
        expect_unauthorized(response, &format!("Authorization: {value:.30}")).await;
    }
}

#[tokio::test]
async fn token_signed_with_another_secret_is_401() {
    let app = TestApp::spawn().await;
    let forged = sign(
        &fresh_claims("admin", ADMIN_TOKEN_VERSION),
        b"some-other-secret-0123456789abcdef",
    );
    let detail = expect_unauthorized(app.get(&forged, "/api/users/me").await, "other secret").await;
    assert!(detail.contains("signature"), "{detail}");
    // The same claims with the real secret are accepted: only the signature differs.
    let genuine = sign(
        &fresh_claims("admin", ADMIN_TOKEN_VERSION),
        JWT_SECRET.as_bytes(),
    );
    let me = expect_ok(app.get(&genuine, "/api/users/me").await, "real secret").await;
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn alg_none_token_is_401() {
    let app = TestApp::spawn().await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        fresh_claims("admin", ADMIN_TOKEN_VERSION)
            .to_string()
            .as_bytes(),
    );
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let detail = expect_unauthorized(app.get(&token, "/api/users/me").await, "alg none").await;
        // `none` is not even a known algorithm to the JWT library: refused as malformed.
        assert!(
            detail.contains("algorithm") || detail.contains("malformed"),
            "{detail}"
        );
        expect_unauthorized(app.get(&token, "/api/users").await, "alg none, admin route").await;
    }
}

#[tokio::test]
async fn token_signed_with_another_hmac_size_is_401() {
    let app = TestApp::spawn().await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let key = EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key");
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &fresh_claims("admin", ADMIN_TOKEN_VERSION),
            &key,
        )
        .expect("encode");
        let detail = expect_unauthorized(
            app.get(&token, "/api/users/me").await,
            &format!("{alg:?} with the real secret"),
        )
        .await;
        assert!(detail.contains("algorithm"), "{alg:?}: {detail}");
    }
}

#[tokio::test]
async fn token_with_tampered_payload_is_401() {
    let app = TestApp::spawn().await;
    let (email, token) = new_user(&app, "tamper").await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url"))
            .expect("claims JSON");
    assert_eq!(payload["sub"], email.as_str());
    payload["sub"] = json!("admin");
    let forged_payload = URL_SAFE_NO_PAD.encode(payload.to_string().as_bytes());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    let detail =
        expect_unauthorized(app.get(&forged, "/api/users").await, "sub changed to admin").await;
    assert!(detail.contains("signature"), "{detail}");
    expect_unauthorized(app.get(&forged, "/api/users/me").await, "sub changed, me").await;
    // The untouched token still works, as the user it names.
    let me = expect_ok(app.get(&token, "/api/users/me").await, "original").await;
    assert_eq!(me["username"], email.as_str());
}

#[tokio::test]
async fn expired_token_is_401() {
    let app = TestApp::spawn().await;
    let t = now();
    let expired = sign(
        &claims("admin", ADMIN_TOKEN_VERSION, t - 7200, t - 3600),
        JWT_SECRET.as_bytes(),
    );
    let detail = expect_unauthorized(app.get(&expired, "/api/users/me").await, "expired").await;
    assert!(detail.contains("expired"), "{detail}");
}

#[tokio::test]
async fn not_yet_valid_token_is_401() {
    let app = TestApp::spawn().await;
    let t = now();
    let early = sign(
        &claims("admin", ADMIN_TOKEN_VERSION, t + 3600, t + 7200),
        JWT_SECRET.as_bytes(),
    );
    let detail =
        expect_unauthorized(app.get(&early, "/api/users/me").await, "nbf in the future").await;
    assert!(detail.contains("not valid yet"), "{detail}");
}

#[tokio::test]
async fn token_with_wrong_version_is_401() {
    let app = TestApp::spawn().await;
    for ver in [ADMIN_TOKEN_VERSION + 1, ADMIN_TOKEN_VERSION - 1] {
        let stale = sign(&fresh_claims("admin", ver), JWT_SECRET.as_bytes());
        let detail = expect_unauthorized(
            app.get(&stale, "/api/users/me").await,
            &format!("ver {ver}"),
        )
        .await;
        assert!(detail.contains("revoked"), "ver {ver}: {detail}");
    }
}

#[tokio::test]
async fn token_with_wrong_issuer_or_audience_is_401() {
    let app = TestApp::spawn().await;
    for (field, value) in [("iss", "someone-else"), ("aud", "another-api")] {
        let mut c = fresh_claims("admin", ADMIN_TOKEN_VERSION);
        c[field] = json!(value);
        let token = sign(&c, JWT_SECRET.as_bytes());
        expect_unauthorized(
            app.get(&token, "/api/users/me").await,
            &format!("{field} {value}"),
        )
        .await;
    }
}

#[tokio::test]
async fn token_for_a_user_that_does_not_exist_is_401() {
    let app = TestApp::spawn().await;
    let ghost = format!("{}@example.com", unique("ghost"));
    let token = sign(&fresh_claims(&ghost, 0), JWT_SECRET.as_bytes());
    let detail = expect_unauthorized(app.get(&token, "/api/users/me").await, "unknown sub").await;
    assert!(detail.contains("no longer exists"), "{detail}");
    expect_unauthorized(app.list_agents(&token).await, "unknown sub, agents").await;
}

#[tokio::test]
async fn logout_revokes_that_token_only() {
    let app = TestApp::spawn().await;
    let (email, first) = new_user(&app, "logout").await;
    let second = app.token(&email, USER_PASSWORD).await;
    assert_ne!(first, second);
    let body = expect_ok(app.logout(&first).await, "logout").await;
    assert!(body["message"].is_string(), "{body}");
    let detail = expect_unauthorized(app.get(&first, "/api/users/me").await, "revoked token").await;
    assert!(detail.contains("revoked"), "{detail}");
    expect_unauthorized(app.logout(&first).await, "logout twice").await;
    let me = expect_ok(app.get(&second, "/api/users/me").await, "second token").await;
    assert_eq!(me["username"], email.as_str());
}

#[tokio::test]
async fn every_protected_route_without_token_is_401() {
    let app = TestApp::spawn().await;
    let rename = json!({"new_name": "whatever"});
    let create = json!({"name": "whatever"});
    let new_user = json!({"email": "x@example.com", "password": "long-enough-1"});
    let table: [(Method, &str, Option<&Value>); 12] = [
        (Method::GET, "/api/agents", None),
        (Method::POST, "/api/agents", Some(&create)),
        (Method::GET, "/api/agents/some-agent", None),
        (Method::DELETE, "/api/agents/some-agent", None),
        (Method::POST, "/api/agents/some-agent/start", None),
        (Method::POST, "/api/agents/some-agent/stop", None),
        (Method::PUT, "/api/agents/some-agent/rename", Some(&rename)),
        (Method::GET, "/api/users/me", None),
        (Method::GET, "/api/users", None),
        (Method::POST, "/api/users", Some(&new_user)),
        (Method::GET, "/api/admin/orphans", None),
        (Method::POST, "/api/auth/logout", None),
    ];
    for (method, path, body) in table {
        let mut request = app.client.request(method.clone(), app.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        expect_unauthorized(response, &format!("{method} {path}")).await;
    }
    // Nothing was created by the refused requests.
    let users = expect_ok(app.get(&app.admin, "/api/users").await, "users").await;
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
    let agents = expect_ok(app.list_agents(&app.admin).await, "agents").await;
    assert_eq!(agents, json!([]));
}

// ---- users ---------------------------------------------------------------------------------

#[tokio::test]
async fn me_describes_the_admin_and_a_created_user() {
    let app = TestApp::spawn().await;
    let admin = expect_ok(app.get(&app.admin, "/api/users/me").await, "admin me").await;
    assert_eq!(admin["username"], "admin");
    assert_eq!(admin["role"], "admin");
    assert!(admin["created_at"].is_string(), "{admin}");
    assert!(admin.get("password_hash").is_none(), "{admin}");

    let (email, token) = new_user(&app, "me").await;
    let user = expect_ok(app.get(&token, "/api/users/me").await, "user me").await;
    assert_eq!(user["username"], email.as_str());
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["role"], "user");
    assert!(user.get("password_hash").is_none(), "{user}");
}

#[tokio::test]
async fn only_an_admin_may_create_users() {
    let app = TestApp::spawn().await;
    let (_, token) = new_user(&app, "creator").await;
    let victim = format!("{}@example.com", unique("victim"));
    expect_error(
        app.create_user(&token, &victim, USER_PASSWORD).await,
        StatusCode::FORBIDDEN,
        "user creates a user",
    )
    .await;
    expect_error(
        app.post(
            &token,
            "/api/users",
            Some(json!({"email": victim, "password": USER_PASSWORD, "role": "admin"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "user creates an admin",
    )
    .await;
    expect_error(
        app.login(&victim, USER_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "the refused user does not exist",
    )
    .await;
}

#[tokio::test]
async fn creating_a_user_with_a_taken_email_is_409() {
    let app = TestApp::spawn().await;
    let email = format!("{}@example.com", unique("dup"));
    expect_ok(
        app.create_user(&app.admin, &email, USER_PASSWORD).await,
        "first",
    )
    .await;
    expect_error(
        app.create_user(&app.admin, &email, "another-password")
            .await,
        StatusCode::CONFLICT,
        "same email",
    )
    .await;
    expect_error(
        app.create_user(&app.admin, &email.to_uppercase(), "another-password")
            .await,
        StatusCode::CONFLICT,
        "same email, other case",
    )
    .await;
    // The first account keeps its password.
    app.token(&email, USER_PASSWORD).await;
}

#[tokio::test]
async fn invalid_user_bodies_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let email = format!("{}@example.com", unique("bad"));
    let cases = [
        (
            "bad email",
            json!({"email": "not-an-email", "password": USER_PASSWORD}),
            "email",
        ),
        (
            "short password",
            json!({"email": email, "password": "short"}),
            "password",
        ),
        (
            "unknown field",
            json!({"email": email, "password": USER_PASSWORD, "nickname": "al"}),
            "nickname",
        ),
        (
            "unknown role",
            json!({"email": email, "password": USER_PASSWORD, "role": "root"}),
            "role",
        ),
    ];
    for (case, body, field) in cases {
        let detail = expect_error(
            app.post(&app.admin, "/api/users", Some(body)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            case,
        )
        .await;
        assert!(detail.contains(field), "{case}: detail {detail:?}");
    }
    // None of the refused bodies created the account.
    let users = expect_ok(app.get(&app.admin, "/api/users").await, "users").await;
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
}

#[tokio::test]
async fn listing_users_is_admin_only() {
    let app = TestApp::spawn().await;
    let (email, token) = new_user(&app, "lister").await;
    expect_error(
        app.get(&token, "/api/users").await,
        StatusCode::FORBIDDEN,
        "user lists users",
    )
    .await;
    let users = expect_ok(app.get(&app.admin, "/api/users").await, "admin lists").await;
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", email.as_str()], "{users}");
    assert!(
        users
            .as_array()
            .expect("array")
            .iter()
            .all(|u| u.get("password_hash").is_none()),
        "{users}"
    );
}

// ---- isolation -----------------------------------------------------------------------------

#[tokio::test]
async fn another_users_agent_does_not_exist_for_you() {
    let app = TestApp::spawn().await;
    let name = unique("iso");
    let created = app.create_small(&app.admin, &name).await;
    let (_, token) = new_user(&app, "outsider").await;

    let list = expect_ok(app.list_agents(&token).await, "user's list").await;
    assert_eq!(list, json!([]));

    // Every answer is the one for an agent that does not exist at all: names cannot be probed.
    let missing = unique("missing");
    let not_found = expect_error(
        app.get_agent(&token, &missing).await,
        StatusCode::NOT_FOUND,
        "truly missing",
    )
    .await;
    let renamed_to = unique("taken");
    let attempts = [
        ("get", app.get_agent(&token, &name).await),
        ("start", app.start_agent(&token, &name).await),
        ("stop", app.stop_agent(&token, &name).await),
        ("rename", app.rename_agent(&token, &name, &renamed_to).await),
        ("delete", app.delete_agent(&token, &name).await),
    ];
    for (what, response) in attempts {
        let detail = expect_error(response, StatusCode::NOT_FOUND, what).await;
        assert_eq!(
            detail,
            not_found.replace(&missing, &name),
            "{what}: same answer as for a missing agent"
        );
    }

    // The admin's agent is untouched.
    let after = expect_ok(app.get_agent(&app.admin, &name).await, "admin get").await;
    assert_eq!(after["name"], name.as_str());
    assert_eq!(after["id"], created["id"]);
    assert_eq!(after["status"], created["status"], "stop was refused");
    expect_error(
        app.get_agent(&app.admin, &renamed_to).await,
        StatusCode::NOT_FOUND,
        "rename was refused",
    )
    .await;
    let admin_list = expect_ok(app.list_agents(&app.admin).await, "admin list").await;
    let names: Vec<&str> = admin_list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()]);
}

#[tokio::test]
async fn admin_routes_refuse_a_user_with_403() {
    let app = TestApp::spawn().await;
    let (_, token) = new_user(&app, "nonadmin").await;
    expect_error(
        app.get(&token, "/api/admin/orphans").await,
        StatusCode::FORBIDDEN,
        "orphans",
    )
    .await;
    let orphans = expect_ok(app.get(&app.admin, "/api/admin/orphans").await, "admin").await;
    assert!(orphans.is_array(), "{orphans}");
}

// ---- algorithm confusion, password changes, deleted users (issue 7) ------------------------

/// A key made by `openssl genpkey` (PEM, PKCS#8) with `args`, and its public half.
fn openssl_key(args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let private = std::process::Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .expect("openssl genpkey (install openssl: .ci/deps does)");
    assert!(private.status.success(), "{private:?}");
    let mut child = std::process::Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl pkey");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&private.stdout)
        .unwrap();
    let public = child.wait_with_output().unwrap();
    assert!(public.status.success());
    (private.stdout, public.stdout)
}

/// `openssl <args> <key file>` over `input` (given on stdin): the raw signature.
fn openssl_sign(key: &[u8], args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("key.pem");
    let input_path = dir.path().join("input");
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&input_path, input).unwrap();
    let mut command = std::process::Command::new("openssl");
    command.args(args).arg(&key_path);
    if args[0] == "pkeyutl" {
        command.arg("-in").arg(&input_path);
    } else {
        command.arg(&input_path);
    }
    let out = command.output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    let _ = std::io::stdout().flush();
    out.stdout
}

/// A JWT with `header` over `claims`, its signature HMAC-SHA256 under `key` (whatever the
/// header claims).
fn hmac_signed(header: &Value, claims: &Value, key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    // HMAC by hand (RFC 2104), so the header can say anything.
    let mut block = if key.len() > 64 {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    block.resize(64, 0);
    let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner_hash = Sha256::new()
        .chain_update(&inner)
        .chain_update(signing_input.as_bytes())
        .finalize();
    let mac = Sha256::new()
        .chain_update(&outer)
        .chain_update(inner_hash)
        .finalize();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

#[tokio::test]
async fn asymmetric_and_confused_algorithm_tokens_are_401() {
    let app = TestApp::spawn().await;
    let claims = fresh_claims("admin", ADMIN_TOKEN_VERSION);
    // Sanity: the hand-made HMAC is the real one (with the right secret it is accepted).
    let genuine = hmac_signed(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        JWT_SECRET.as_bytes(),
    );
    expect_ok(
        app.get(&genuine, "/api/users/me").await,
        "hand-signed HS256",
    )
    .await;

    let (rsa_private, rsa_public) =
        openssl_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let (ec_private, _) = openssl_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (ed_private, _) = openssl_key(&["-algorithm", "ed25519"]);
    let signed = |alg: &str, key: &[u8], sign_args: &[&str]| {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let signature = openssl_sign(key, sign_args, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };
    let mut tokens = vec![
        (
            "RS256",
            signed("RS256", &rsa_private, &["dgst", "-sha256", "-sign"]),
        ),
        (
            "PS256",
            signed(
                "PS256",
                &rsa_private,
                &[
                    "dgst",
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sign",
                ],
            ),
        ),
        (
            "ES256",
            signed("ES256", &ec_private, &["dgst", "-sha256", "-sign"]),
        ),
        (
            "EdDSA",
            signed(
                "EdDSA",
                &ed_private,
                &["pkeyutl", "-sign", "-rawin", "-inkey"],
            ),
        ),
        // The classic confusion: HMAC keyed with a public key, under either algorithm name.
        (
            "HS256 keyed with an RSA public key",
            hmac_signed(&json!({"alg": "HS256", "typ": "JWT"}), &claims, &rsa_public),
        ),
        (
            "RS256 header, HMAC keyed with an RSA public key",
            hmac_signed(&json!({"alg": "RS256", "typ": "JWT"}), &claims, &rsa_public),
        ),
        // The right secret, but a header that asks for something else.
        (
            "RS256 header, HMAC with the real secret",
            hmac_signed(
                &json!({"alg": "RS256", "typ": "JWT"}),
                &claims,
                JWT_SECRET.as_bytes(),
            ),
        ),
        (
            "jku/kid pointing elsewhere, wrong key",
            hmac_signed(
                &json!({"alg": "HS256", "kid": "../../dev/null", "jku": "http://127.0.0.1:9/keys"}),
                &claims,
                b"",
            ),
        ),
    ];
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        tokens.push(("alg none, any case", format!("{header}.{payload}.")));
    }
    for (what, token) in tokens {
        expect_unauthorized(app.get(&token, "/api/users/me").await, what).await;
        expect_unauthorized(app.get(&token, "/api/users").await, what).await;
    }
}

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> Response {
    app.put(
        token,
        "/api/users/me/password",
        json!({"current_password": current, "new_password": new}),
    )
    .await
}

#[tokio::test]
async fn a_password_change_revokes_every_older_token_of_that_user_only() {
    let app = TestApp::spawn().await;
    let (email, first) = new_user(&app, "pw").await;
    let second = app.token(&email, USER_PASSWORD).await;
    let (_, bystander) = new_user(&app, "pw-other").await;

    // Refused changes change nothing.
    let wrong = change_password(&app, &first, "not-my-password", "brand-new-password").await;
    let detail = expect_unauthorized(wrong, "wrong current password").await;
    assert!(detail.contains("current_password"), "{detail}");
    let short = change_password(&app, &first, USER_PASSWORD, "short").await;
    let detail = expect_error(short, StatusCode::UNPROCESSABLE_ENTITY, "short").await;
    assert!(detail.contains("new_password"), "{detail}");
    let extra = app
        .put(
            &first,
            "/api/users/me/password",
            json!({"current_password": USER_PASSWORD, "new_password": "brand-new-password", "role": "admin"}),
        )
        .await;
    expect_error(extra, StatusCode::UNPROCESSABLE_ENTITY, "unknown field").await;
    expect_ok(app.get(&second, "/api/users/me").await, "still valid").await;

    let changed = change_password(&app, &first, USER_PASSWORD, "brand-new-password").await;
    let body = expect_ok(changed, "change").await;
    assert!(body["message"].is_string(), "{body}");
    // Every token issued before — the one used to change it included — is dead.
    for (what, token) in [("the changing token", &first), ("another session", &second)] {
        let detail = expect_unauthorized(app.get(token, "/api/users/me").await, what).await;
        assert!(detail.contains("password change"), "{what}: {detail}");
    }
    // The old password no longer logs in; the new one does, and its token works.
    expect_unauthorized(app.login(&email, USER_PASSWORD).await, "old password").await;
    let fresh = app.token(&email, "brand-new-password").await;
    expect_ok(app.get(&fresh, "/api/users/me").await, "new token").await;
    // Other users are untouched.
    expect_ok(app.get(&bystander, "/api/users/me").await, "bystander").await;
    expect_ok(app.get(&app.admin, "/api/users/me").await, "admin").await;
}

#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins() {
    let app = TestApp::spawn_with(|c| {
        c.login_burst = 3;
        c.login_per_minute = 1;
    })
    .await;
    let (_, token) = new_user(&app, "guess").await;
    for attempt in 1..=3 {
        let r = change_password(
            &app,
            &token,
            &format!("guess-{attempt}"),
            "brand-new-password",
        )
        .await;
        expect_unauthorized(r, &format!("guess #{attempt}")).await;
    }
    let limited = change_password(&app, &token, "guess-4", "brand-new-password").await;
    assert!(limited.headers().contains_key(header::RETRY_AFTER));
    expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "fourth guess").await;
    // Locked out: not even the right password is checked.
    let right = change_password(&app, &token, USER_PASSWORD, "brand-new-password").await;
    expect_error(
        right,
        StatusCode::TOO_MANY_REQUESTS,
        "right password while locked",
    )
    .await;
}

#[tokio::test]
async fn a_deleted_users_tokens_die_and_do_not_come_back_with_a_new_account() {
    let app = TestApp::spawn().await;
    let (email, token) = new_user(&app, "gone").await;
    let (stays, other) = new_user(&app, "stays").await;
    // Only an admin deletes, never the admin account nor oneself, and an unknown user is 404.
    expect_error(
        app.delete(&other, &format!("/api/users/{email}")).await,
        StatusCode::FORBIDDEN,
        "user deletes user",
    )
    .await;
    expect_error(
        app.delete(&app.admin, "/api/users/admin").await,
        StatusCode::FORBIDDEN,
        "delete admin",
    )
    .await;
    expect_error(
        app.delete(&app.admin, "/api/users/nobody@example.com")
            .await,
        StatusCode::NOT_FOUND,
        "unknown user",
    )
    .await;
    // Two of the admin's agents, shared with the user who is about to go (and one of them
    // with the user who stays, whose share must survive).
    let agent = unique("kept");
    let second = unique("kept2");
    for name in [&agent, &second] {
        app.create_small(&app.admin, name).await;
        let shared = app
            .post(
                &app.admin,
                &format!("/api/agents/{name}/share"),
                Some(json!({ "email": email })),
            )
            .await;
        expect_ok(shared, "share").await;
        expect_ok(app.get_agent(&token, name).await, "shared agent visible").await;
    }
    let shared = app
        .post(
            &app.admin,
            &format!("/api/agents/{second}/share"),
            Some(json!({ "email": stays })),
        )
        .await;
    expect_ok(shared, "share with the user who stays").await;

    let deleted = expect_ok(
        app.delete(&app.admin, &format!("/api/users/{email}")).await,
        "delete user",
    )
    .await;
    assert!(deleted["message"].is_string(), "{deleted}");
    let detail = expect_unauthorized(app.get(&token, "/api/users/me").await, "deleted user").await;
    assert!(detail.contains("no longer exists"), "{detail}");
    expect_unauthorized(app.login(&email, USER_PASSWORD).await, "deleted user login").await;
    let users = expect_ok(app.get(&app.admin, "/api/users").await, "users").await;
    assert!(
        !users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == email.as_str()),
        "{users}"
    );
    let shares = expect_ok(
        app.get(&app.admin, &format!("/api/agents/{agent}/shares"))
            .await,
        "shares",
    )
    .await;
    assert_eq!(shares, json!([]), "the deleted user's shares go with them");
    let shares = expect_ok(
        app.get(&app.admin, &format!("/api/agents/{second}/shares"))
            .await,
        "shares",
    )
    .await;
    let emails: Vec<&str> = shares
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["shared_with_email"].as_str())
        .collect();
    assert_eq!(emails, [stays.as_str()], "{shares}");
    expect_ok(app.get_agent(&other, &second).await, "other share kept").await;

    // A new account with the same email: the old token stays dead, and inherits no share.
    let again = app.user_token(&app.admin, &email).await;
    let detail = expect_unauthorized(app.get(&token, "/api/users/me").await, "old token").await;
    assert!(detail.contains("revoked"), "{detail}");
    expect_ok(app.get(&again, "/api/users/me").await, "new account").await;
    expect_error(
        app.get_agent(&again, &agent).await,
        StatusCode::NOT_FOUND,
        "no inherited share",
    )
    .await;
    // A user who owns agents cannot be deleted until they are gone.
    let theirs = unique("theirs");
    app.create_small(&again, &theirs).await;
    expect_error(
        app.delete(&app.admin, &format!("/api/users/{email}")).await,
        StatusCode::CONFLICT,
        "owner of agents",
    )
    .await;
    expect_ok(
        app.delete_agent(&again, &theirs).await,
        "delete their agent",
    )
    .await;
    expect_ok(
        app.delete(&app.admin, &format!("/api/users/{email}")).await,
        "delete after",
    )
    .await;
}
