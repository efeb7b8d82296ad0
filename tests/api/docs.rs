//! The self-description of the API: the OpenAPI document lists every route with its methods and
//! the bearer scheme, Swagger UI is served from the binary (no CDN), unknown routes answer with
//! the JSON error shape, and `/health` needs no token.

use reqwest::{Method, Response, StatusCode, header};
use serde_json::Value;

use crate::helpers::TestApp;

/// The route table of `src/routes/mod.rs`, as OpenAPI spells the paths.
const ROUTES: &[(&str, &[&str])] = &[
    ("/health", &["get"]),
    ("/metrics", &["get"]),
    ("/ws", &["get"]),
    ("/api/token", &["post"]),
    ("/api/auth/logout", &["post"]),
    ("/api/users/me", &["get"]),
    ("/api/users", &["get", "post"]),
    ("/api/users/me/password", &["put"]),
    ("/api/users/{email}", &["delete"]),
    ("/api/admin/orphans", &["get"]),
    ("/api/agents", &["get", "post"]),
    ("/api/agents/context-stats", &["get"]),
    ("/api/agents/autonomy-status", &["get"]),
    ("/api/agents/{name}", &["get", "delete"]),
    ("/api/agents/{name}/start", &["post"]),
    ("/api/agents/{name}/stop", &["post"]),
    ("/api/agents/{name}/stats", &["get"]),
    ("/api/agents/{name}/files", &["get"]),
    ("/api/agents/{name}/files/download", &["get"]),
    ("/api/agents/{name}/rename", &["put"]),
    ("/api/agents/{name}/info", &["get"]),
    ("/api/agents/{name}/share", &["post"]),
    ("/api/agents/{name}/share/{email}", &["delete"]),
    ("/api/agents/{name}/shares", &["get"]),
    ("/api/agents/{name}/folders", &["get", "put"]),
    ("/api/agents/{name}/folders/available", &["get"]),
    ("/api/agents/{name}/folders/consumers", &["get"]),
    ("/api/agents/{name}/autonomy", &["get", "put"]),
    ("/api/agents/{name}/read-only", &["get", "put"]),
    ("/api/agents/{name}/timeout", &["get", "put"]),
    ("/api/agents/{name}/avatar", &["get", "put"]),
    ("/api/agents/{name}/logs", &["get"]),
    ("/api/agents/{name}/ssh-access", &["post", "delete"]),
    ("/api/agents/{name}/credentials/inject", &["post"]),
    ("/api/agents/{name}/credentials/status", &["get"]),
    ("/api/agents/{name}/credentials/export", &["post"]),
    ("/api/agents/{name}/credentials/import", &["post"]),
    ("/api/templates", &["get"]),
];

/// Routes that need no JWT bearer token (`/metrics` takes its own metrics token instead).
const PUBLIC: &[&str] = &["/health", "/api/token", "/ws", "/metrics"];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Assert an error response: the status, and a JSON body with a non-empty string `detail`.
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

async fn openapi(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    response.json().await.expect("OpenAPI is JSON")
}

/// The HTTP methods an OpenAPI path item defines.
fn methods_of(item: &Value) -> Vec<&str> {
    HTTP_METHODS
        .iter()
        .copied()
        .filter(|m| item.get(*m).is_some())
        .collect()
}

/// The `src` of every `<script>` in an HTML page.
fn script_sources(html: &str) -> Vec<String> {
    html.split("<script")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            let start = tag.find("src=")? + 4;
            let quoted = &tag[start..];
            let quote = quoted.chars().next()?;
            let rest = &quoted[1..];
            Some(rest[..rest.find(quote)?].to_string())
        })
        .collect()
}

#[tokio::test]
async fn openapi_lists_every_route_with_its_methods() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths object");
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        assert_eq!(methods_of(item), *methods, "methods of {path}");
    }
    let mut documented: Vec<&String> = paths.keys().collect();
    documented.retain(|p| !ROUTES.iter().any(|(route, _)| route == p));
    assert!(
        documented.is_empty(),
        "documented but not in ROUTES: {documented:?}"
    );
}

#[tokio::test]
async fn openapi_declares_the_bearer_scheme_on_protected_operations() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (path, methods) in ROUTES {
        for method in *methods {
            let operation = &doc["paths"][*path][*method];
            let security = operation["security"].as_array();
            let uses_bearer = security.is_some_and(|s| {
                s.iter()
                    .any(|requirement| requirement.get("bearer").is_some())
            });
            if PUBLIC.contains(path) {
                assert!(!uses_bearer, "{method} {path} needs no token");
            } else {
                assert!(uses_bearer, "{method} {path} should require bearer");
            }
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let doc = openapi(&app).await;
    let paths = doc["paths"].as_object().expect("paths object");
    for (path, item) in paths {
        let concrete = path.replace("{name}", "no-such-agent");
        for method in methods_of(item) {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .expect("request");
            let status = response.status();
            // Without a token a protected route answers 401; a public one answers on its own
            // terms. A documented operation with no handler would fall through to 404 or 405.
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but answers {status}"
            );
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_locally() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type:?}");
    let html = response.text().await.expect("body");
    assert!(html.to_lowercase().contains("swagger"), "{html}");

    let sources = script_sources(&html);
    assert!(
        sources.iter().any(|s| s.contains("swagger-ui-bundle.js")),
        "the page loads the Swagger UI bundle: {sources:?}"
    );
    for src in &sources {
        assert!(
            !src.starts_with("http://") && !src.starts_with("https://") && !src.starts_with("//"),
            "script from the network: {src}"
        );
        let path = match src.strip_prefix("./") {
            Some(relative) => format!("/docs/{relative}"),
            None if src.starts_with('/') => src.clone(),
            None => format!("/docs/{src}"),
        };
        let asset = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .expect("request");
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        let bytes = asset.bytes().await.expect("body");
        assert!(!bytes.is_empty(), "{path} is empty");
    }
    let stylesheets_from_network = html
        .split("<link")
        .skip(1)
        .any(|tag| tag.contains("href=\"http") || tag.contains("href=\"//"));
    assert!(!stylesheets_from_network, "stylesheet from the network");

    // The page is pointed at this server's own document.
    let initializer = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(initializer.status(), StatusCode::OK);
    let js = initializer.text().await.expect("body");
    assert!(js.contains("/openapi.json"), "{js}");
}

#[tokio::test]
async fn docs_without_slash_redirects_to_docs_with_slash() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client.get(app.url("/docs")).send().await.expect("request");
    assert!(
        response.status().is_redirection(),
        "status {}",
        response.status()
    );
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location == "/docs/" || location == app.url("/docs/"),
        "Location {location:?}"
    );
}

#[tokio::test]
async fn unknown_route_is_404_with_json_detail() {
    let app = TestApp::spawn().await;
    let anonymous = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .expect("request");
    expect_error(anonymous, StatusCode::NOT_FOUND, "GET /no/such/route").await;
    expect_error(
        app.get(&app.admin, "/api/no-such-thing").await,
        StatusCode::NOT_FOUND,
        "GET /api/no-such-thing with a token",
    )
    .await;
    expect_error(
        app.post(&app.admin, "/api/agents/a/b/c", None).await,
        StatusCode::NOT_FOUND,
        "POST /api/agents/a/b/c",
    )
    .await;
}

#[tokio::test]
async fn health_is_200_without_a_token() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok", "{body}");
}

#[tokio::test]
async fn a_known_route_with_another_method_is_405_with_json_detail() {
    let app = TestApp::spawn().await;
    expect_error(
        app.client
            .patch(app.url("/api/agents"))
            .bearer_auth(&app.admin)
            .send()
            .await
            .expect("request"),
        StatusCode::METHOD_NOT_ALLOWED,
        "PATCH /api/agents",
    )
    .await;
    expect_error(
        app.put(&app.admin, "/api/agents/x/start", serde_json::json!({}))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "PUT /api/agents/x/start",
    )
    .await;
    let head = app
        .client
        .head(app.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), StatusCode::OK);
    expect_error(
        app.client
            .get(app.url("/docs/no-such-asset.js"))
            .send()
            .await
            .expect("request"),
        StatusCode::NOT_FOUND,
        "missing Swagger asset",
    )
    .await;
}
