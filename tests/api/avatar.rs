//! Agent avatars.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, unique};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn upload(app: &TestApp, token: &str, name: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .put(app.url(&format!("/api/agents/{name}/avatar")))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn avatar_url(app: &TestApp, name: &str) -> String {
    let agent: Value = app.get_agent(&app.admin, name).await.json().await.unwrap();
    agent["avatar_url"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_generated_avatar_is_served_until_one_is_uploaded() {
    let app = TestApp::spawn().await;
    let name = unique("face");
    app.create_small(&app.admin, &name).await;
    let url = avatar_url(&app, &name).await;
    assert_eq!(url, format!("/api/agents/{name}/avatar?v=0"));

    let first = app.get(&app.admin, &url).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["content-type"], "image/svg+xml");
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert!(first.headers().contains_key("cache-control"));
    let svg = first.text().await.unwrap();
    assert!(svg.starts_with("<svg"));
    // Deterministic.
    let again = app.get(&app.admin, &url).await.text().await.unwrap();
    assert_eq!(svg, again);
    // Conditional GET.
    let cached = app
        .client
        .get(app.url(&url))
        .bearer_auth(&app.admin)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Upload: the version in avatar_url changes and the image is served back byte for byte.
    let response = upload(&app, &app.admin, &name, PNG.to_vec()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    let new_url = avatar_url(&app, &name).await;
    assert_ne!(new_url, url);
    assert_eq!(updated["avatar_url"], new_url);
    let served = app.get(&app.admin, &new_url).await;
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_ne!(served.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);

    // A second upload changes the version again.
    upload(&app, &app.admin, &name, PNG.to_vec()).await;
    assert_ne!(avatar_url(&app, &name).await, new_url);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let name = unique("badface");
    app.create_small(&app.admin, &name).await;
    let before = avatar_url(&app, &name).await;
    let mut too_large = PNG.to_vec();
    too_large.resize(600 * 1024, 0);
    for (body, expected) in [
        (b"GIF89a......".to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            b"<svg onload=alert(1)/>".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Vec::new(), StatusCode::UNPROCESSABLE_ENTITY),
        (too_large, StatusCode::PAYLOAD_TOO_LARGE),
        (vec![0x89; 2 * 1024 * 1024], StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let response = upload(&app, &app.admin, &name, body).await;
        assert_eq!(response.status(), expected);
        let error: Value = response.json().await.unwrap();
        assert!(error["detail"].is_string(), "{error}");
    }
    assert_eq!(avatar_url(&app, &name).await, before);
}

#[tokio::test]
async fn only_managers_upload_and_strangers_see_nothing() {
    let app = TestApp::spawn().await;
    let name = unique("guarded");
    app.create_small(&app.admin, &name).await;
    let other = app
        .user_token(&app.admin, &format!("{}@example.com", unique("u")))
        .await;
    assert_eq!(
        upload(&app, &other, &name, PNG.to_vec()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&other, &format!("/api/agents/{name}/avatar"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
