//! Hostile input over every route, table-driven. The routes, their parameters and their body
//! schemas are read from `/openapi.json` at run time, so a new route is covered the day it is
//! documented.
//!
//! For every operation the test sends hostile path parameters (traversal, control characters,
//! Unicode, over-long), hostile query values (negative, huge, not numbers, traversal in
//! path-like parameters, duplicated), and — for operations with a body — malformed JSON, JSON of
//! the wrong shape, wrong types for every field, unknown fields, hostile strings in every string
//! field and a body over the size limit; then headers too large. Every answer must be a clean
//! 4xx with a JSON `detail` (or, for requests that are odd but valid, a 2xx), never a 5xx and
//! never a dropped connection, and the server's state — agents, users, the target agent's
//! settings, shares and Docker objects — must be exactly what it was before.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// What a case must get back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx with a JSON `detail`.
    Refused,
    /// Anything but a server error: the input is odd but may be valid (a capped `tail`).
    Answered,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    /// Path and query, already percent-encoded where needed.
    url: String,
    body: Body,
    expect: Expect,
    what: String,
}

/// Path parameter values: traversal, encodings, control characters, Unicode, over-long. Each
/// is inserted raw into the URL (already percent-encoded where it must be).
const HOSTILE_SEGMENTS: &[&str] = &[
    "%2E%2E",
    "..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%00",
    "a%00b",
    "name%0Aset-cookie:x",
    "%0D%0A",
    "%E2%80%AEtxt.exe",
    "%F0%9F%98%80",
    "%C3%A9t%C3%A9",
    "%FF%FE",
    "UPPER-Case",
    "with%20space",
    "%27%20OR%201%3D1--",
    "%3Cscript%3E",
    "*",
    "-leading-dash",
];

/// Query values tried on every query parameter.
const HOSTILE_QUERY_VALUES: &[&str] = &[
    "-1",
    "1000000000000",
    "99999999999999999999999999",
    "abc",
    "",
    "%00",
    "1e3",
    "0x10",
    "%FF",
    "..%2F..%2Fetc%2Fpasswd",
];

/// Values of path-like query parameters (`?path=`): every one must be refused.
const TRAVERSALS: &[&str] = &[
    "..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "%2Fhome%2Fdeveloper%2F..%2F..%2Fetc%2Fshadow",
    "..",
    "a%2F..%2F..%2F..%2Froot",
    "%00",
    "CLAUDE.md%00.png",
    "%2Fproc%2Fself%2Fenviron",
];

/// Strings tried in every string field of every body.
fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        "\u{0}".into(),
        "a\u{7}b\u{1b}[31m".into(),
        "line\r\nInjected: header".into(),
        "\u{202e}gnp.exe".into(),
        "😀🚀".into(),
        "../../../../etc/passwd".into(),
        "/var/run/docker.sock".into(),
        "UPPER".into(),
        "$(reboot)`id`".into(),
        "x".repeat(100_000),
    ]
}

/// A JSON value of some other type than the schema's `kind`.
fn wrong_types(kind: &str) -> Vec<Value> {
    match kind {
        "string" => vec![json!(12345), json!([]), json!({"a": 1})],
        "boolean" => vec![json!("true"), json!(1), json!([])],
        "integer" => vec![json!("1"), json!(1.5), json!(true), json!(1e300)],
        "number" => vec![json!("1"), json!(true), json!({})],
        "array" => vec![json!("x"), json!({}), json!(1)],
        _ => vec![json!("x"), json!([]), json!(1)],
    }
}

/// Follow `$ref`s (and `oneOf`/`anyOf` with `null`) to a concrete schema.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[key].as_array()
            && let Some(concrete) = options.iter().find(|o| o["type"] != "null")
        {
            return resolve(doc, concrete);
        }
    }
    schema
}

/// The schema's type, leaving out `null` (OpenAPI 3.1 writes `["string", "null"]`).
fn kind_of(schema: &Value) -> String {
    match &schema["type"] {
        Value::String(s) => s.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("object")
            .to_string(),
        _ if schema["properties"].is_object() => "object".into(),
        _ => "string".into(),
    }
}

/// A placeholder of the given type: never a valid name, email or password, so a body built
/// from placeholders cannot be a valid request by accident.
fn placeholder(kind: &str) -> Value {
    match kind {
        "string" => json!("Not_A-Valid Value"),
        "boolean" => json!(false),
        "integer" | "number" => json!(-7),
        "array" => json!([]),
        _ => json!({}),
    }
}

/// The body's properties (name → resolved schema) and the names of the required ones.
fn properties(doc: &Value, schema: &Value) -> (BTreeMap<String, Value>, Vec<String>) {
    let schema = resolve(doc, schema);
    let props = schema["properties"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), resolve(doc, v).clone()))
                .collect()
        })
        .unwrap_or_default();
    let required = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (props, required)
}

/// Every hostile case for one operation. `valid` gives a valid value for each path parameter.
fn cases_for(
    doc: &Value,
    path: &str,
    method: &Method,
    op: &Value,
    valid: &BTreeMap<&str, String>,
) -> Vec<Case> {
    let params: Vec<(String, String)> = op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["in"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let path_params: Vec<&String> = params
        .iter()
        .filter(|(_, place)| place == "path")
        .map(|(n, _)| n)
        .collect();
    let with = |overrides: &[(&str, &str)]| -> String {
        let mut concrete = path.to_string();
        for name in &path_params {
            let value = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| valid.get(name.as_str()).cloned().unwrap_or_default());
            concrete = concrete.replace(&format!("{{{name}}}"), &value);
        }
        concrete
    };
    let is_read = *method == Method::GET;
    let content = &op["requestBody"]["content"];
    let json_schema = content["application/json"]["schema"].clone();
    let takes_json = json_schema.is_object();
    let takes_raw = !takes_json && content.as_object().is_some_and(|c| !c.is_empty());
    // The body sent alongside path and query cases: one that is wrong, so that a mistake in
    // routing can never turn into a valid request.
    let (props, required) = if takes_json {
        properties(doc, &json_schema)
    } else {
        Default::default()
    };
    let minimal: Value = Value::Object(
        required
            .iter()
            .map(|r| (r.clone(), placeholder(&kind_of(&props[r]))))
            .collect(),
    );
    let default_body = if takes_json {
        Body::Json(minimal.clone())
    } else if takes_raw {
        Body::Raw(b"not an image".to_vec(), "image/png")
    } else {
        Body::None
    };
    let mut cases = Vec::new();
    let mut push = |url: String, body: Body, expect: Expect, what: String| {
        cases.push(Case {
            method: method.clone(),
            url,
            body,
            expect,
            what: format!("{method} {path}: {what}"),
        })
    };

    // Path parameters.
    for name in &path_params {
        for value in HOSTILE_SEGMENTS.iter().map(|v| v.to_string()).chain([
            "a".repeat(300),
            format!(
                "{}%2F..%2F..",
                valid.get(name.as_str()).cloned().unwrap_or_default()
            ),
        ]) {
            push(
                with(&[(name.as_str(), &value)]),
                default_body.clone(),
                Expect::Refused,
                format!("path {name}={value}"),
            );
        }
    }

    // Query parameters.
    let base = with(&[]);
    for (name, _) in params.iter().filter(|(_, place)| place == "query") {
        if name == "token" {
            continue; // /ws: its token is checked like a bearer token (auth.rs, events.rs)
        }
        let path_like = name == "path";
        let values: &[&str] = if path_like {
            TRAVERSALS
        } else {
            HOSTILE_QUERY_VALUES
        };
        let expect = if path_like || !is_read {
            Expect::Refused
        } else {
            Expect::Answered
        };
        for value in values {
            push(
                format!("{base}?{name}={value}"),
                default_body.clone(),
                expect,
                format!("query {name}={value}"),
            );
        }
        push(
            format!("{base}?{name}=1&{name}=2"),
            default_body.clone(),
            if is_read {
                Expect::Answered
            } else {
                Expect::Refused
            },
            format!("query {name} twice"),
        );
        push(
            format!("{base}?{name}={}", "9".repeat(5000)),
            default_body.clone(),
            expect,
            format!("query {name} very long"),
        );
    }

    // Raw (non-JSON) bodies: the avatar upload.
    if takes_raw {
        for (bytes, content_type) in [
            (b"not an image".to_vec(), "image/png"),
            (Vec::new(), "image/png"),
            (
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xff\xff\xff".to_vec(),
                "image/png",
            ),
            (b"<svg onload=alert(1)>".to_vec(), "image/svg+xml"),
            (b"{}".to_vec(), "application/json"),
            (b"GIF89a".to_vec(), "text/html"),
            (vec![0u8; 6 * 1024 * 1024], "image/png"),
        ] {
            let what = format!("{} bytes of {content_type}", bytes.len());
            push(
                base.clone(),
                Body::Raw(bytes, content_type),
                Expect::Refused,
                what,
            );
        }
    }

    // JSON bodies.
    if takes_json {
        let raw = |text: &str| Body::Raw(text.as_bytes().to_vec(), "application/json");
        for text in [
            "{",
            "{\"a\": }",
            "[1, 2",
            "nul",
            "{} trailing",
            "{\"a\": 1,}",
            "\u{feff}{}x",
        ] {
            push(
                base.clone(),
                raw(text),
                Expect::Refused,
                format!("malformed {text:?}"),
            );
        }
        push(
            base.clone(),
            Body::Raw(b"\xff\xfe{\"\xc3\x28\": 1}".to_vec(), "application/json"),
            Expect::Refused,
            "invalid UTF-8".into(),
        );
        push(
            base.clone(),
            raw(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))),
            Expect::Refused,
            "nested 100000 deep".into(),
        );
        for whole in [json!([]), json!("text"), json!(1), json!(true)] {
            push(
                base.clone(),
                Body::Json(whole.clone()),
                Expect::Refused,
                format!("whole body {whole}"),
            );
        }
        let mut unknown = minimal.as_object().cloned().unwrap_or_default();
        unknown.insert("__hostile_unknown_field".into(), json!(true));
        push(
            base.clone(),
            Body::Json(Value::Object(unknown)),
            Expect::Refused,
            "unknown field".into(),
        );
        for (field, schema) in &props {
            let kind = kind_of(schema);
            for wrong in wrong_types(&kind) {
                let mut body = minimal.as_object().cloned().unwrap_or_default();
                body.insert(field.clone(), wrong.clone());
                push(
                    base.clone(),
                    Body::Json(Value::Object(body)),
                    Expect::Refused,
                    format!("{field} ({kind}) = {wrong}"),
                );
            }
            let item_kind = kind_of(resolve(doc, &schema["items"]));
            let string_slot = kind == "string" || (kind == "array" && item_kind == "string");
            if string_slot {
                for text in hostile_strings() {
                    let value = if kind == "array" {
                        json!([text])
                    } else {
                        json!(text)
                    };
                    let mut body = minimal.as_object().cloned().unwrap_or_default();
                    body.insert(field.clone(), value);
                    push(
                        base.clone(),
                        Body::Json(Value::Object(body)),
                        Expect::Answered,
                        format!("{field} = {:?}", &text[..text.len().min(24)]),
                    );
                }
            }
            if kind == "object" && schema["additionalProperties"].is_object() {
                // A map of path → content (credential files): traversal in the keys.
                for key in [
                    "../../etc/passwd",
                    "/etc/cron.d/x",
                    "/home/developer/../../root/.ssh/authorized_keys",
                    ".ssh/../../../../tmp/x",
                    "a\u{0}b",
                    "",
                    "/",
                    "..",
                ] {
                    let mut body = minimal.as_object().cloned().unwrap_or_default();
                    body.insert(field.clone(), json!({ key: "x" }));
                    push(
                        base.clone(),
                        Body::Json(Value::Object(body)),
                        Expect::Refused,
                        format!("{field} key {key:?}"),
                    );
                }
            }
        }
        push(
            base.clone(),
            Body::Json(json!({ "x": "a".repeat(5 * 1024 * 1024) })),
            Expect::Refused,
            "5 MiB body".into(),
        );
    }
    cases
}

/// What must not change: every agent as listed, every user, and the target agent's settings
/// and shares.
async fn snapshot(app: &TestApp, target: &str) -> Value {
    let mut state = serde_json::Map::new();
    let mut paths = vec!["/api/agents".to_string(), "/api/users".to_string()];
    for part in [
        "",
        "/autonomy",
        "/read-only",
        "/timeout",
        "/folders",
        "/shares",
    ] {
        paths.push(format!("/api/agents/{target}{part}"));
    }
    for path in paths {
        let response = app.get(&app.admin, &path).await;
        assert_eq!(response.status(), StatusCode::OK, "snapshot {path}");
        state.insert(path, response.json().await.expect("json"));
    }
    Value::Object(state)
}

/// Send one case and check the answer; returns its status.
async fn check(app: &TestApp, case: &Case) -> StatusCode {
    let mut request = app
        .client
        .request(case.method.clone(), format!("{}{}", app.base, case.url))
        .bearer_auth(&app.admin);
    request = match &case.body {
        Body::None => request,
        Body::Json(value) => request.json(value),
        Body::Raw(bytes, content_type) => request
            .header(header::CONTENT_TYPE, *content_type)
            .body(bytes.clone()),
    };
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: no answer ({e})", case.what));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        !status.is_server_error(),
        "{}: {status} {}",
        case.what,
        &text[..text.len().min(300)]
    );
    if case.expect == Expect::Refused {
        assert!(
            status.is_client_error(),
            "{}: expected a 4xx, got {status} {}",
            case.what,
            &text[..text.len().min(300)]
        );
    }
    if status.is_client_error() {
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: {status} without a JSON body: {text:?}", case.what));
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: {status} without detail: {body}",
            case.what
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_on_every_route_gets_a_clean_4xx_and_changes_nothing() {
    let app = TestApp::spawn_with(|c| c.ssh_ports = crate::helpers::free_port_block(4)).await;
    let target = crate::helpers::unique("target");
    app.create_small(&app.admin, &target).await;
    let friend = format!("{}@example.com", crate::helpers::unique("friend"));
    app.user_token(&app.admin, &friend).await;
    let shared = app
        .post(
            &app.admin,
            &format!("/api/agents/{target}/share"),
            Some(json!({ "email": friend })),
        )
        .await;
    assert_eq!(shared.status(), StatusCode::OK);
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let valid: BTreeMap<&str, String> =
        BTreeMap::from([("name", target.clone()), ("email", friend.clone())]);

    let before = snapshot(&app, &target).await;
    let docker_before = app.docker_objects();
    let (mut operations, mut total) = (0, 0);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let cases = cases_for(&doc, path, &method, op, &valid);
            if cases.is_empty() {
                continue;
            }
            operations += 1;
            for case in &cases {
                let status = check(&app, case).await;
                *statuses.entry(status.as_u16()).or_default() += 1;
                total += 1;
                // Cheap check after every case; the full one after each operation.
                let agents: Value = app.list_agents(&app.admin).await.json().await.unwrap();
                assert_eq!(
                    agents, before["/api/agents"],
                    "{}: agents changed",
                    case.what
                );
            }
            assert_eq!(
                snapshot(&app, &target).await,
                before,
                "{method} {path}: state changed"
            );
            assert_eq!(
                app.docker_objects(),
                docker_before,
                "{method} {path}: Docker objects changed"
            );
        }
    }
    assert!(operations >= 35, "only {operations} operations covered");
    eprintln!(
        "hostile input: {total} requests over {operations} operations; statuses {statuses:?}"
    );
}

#[tokio::test]
async fn headers_too_large_are_refused_with_a_4xx_and_the_server_goes_on() {
    let app = TestApp::spawn().await;
    // The server closes a connection after refusing its request head, so each request here
    // gets a connection of its own: a pooled one could be the one just closed (a reset that
    // would say nothing about the server).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // One huge header (over actix's 128 KiB request-head buffer): 431, answered by the HTTP
    // layer itself (its body is not ours to shape; see README "What we test").
    let huge = client
        .get(app.url("/api/agents"))
        .header("x-filler", "a".repeat(200 * 1024))
        .bearer_auth(&app.admin)
        .send()
        .await;
    let response = huge.expect("an answer to a huge header");
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // Too many headers: refused the same way.
    let mut request = client.get(app.url("/api/agents")).bearer_auth(&app.admin);
    for i in 0..120 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let response = request.send().await.expect("an answer to 120 headers");
    assert!(
        response.status().is_client_error(),
        "{} for 120 headers",
        response.status()
    );
    // A large header the parser accepts reaches the app, which answers with its JSON shape.
    let token = "a".repeat(100 * 1024);
    let response = client
        .get(app.url("/api/agents"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert!(body["detail"].is_string(), "{body}");
    // And the server is fine.
    assert_eq!(app.list_agents(&app.admin).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_fields_on_create_are_rejected_and_nothing_is_created() {
    let app = TestApp::spawn().await;
    let name = crate::helpers::unique("strict");
    for body in [
        json!({"name": name, "privileged": true}),
        json!({"name": name, "image": "alpine"}),
        json!({"name": name, "resources": {"cpu": "0.25", "memory": "64m", "binds": ["/:/host"]}}),
        json!({"name": name, "Name": "other"}),
    ] {
        let response = app.create_agent(&app.admin, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let detail: Value = response.json().await.unwrap();
        assert!(
            detail["detail"].as_str().unwrap().contains("unknown field"),
            "{detail}"
        );
    }
    assert_eq!(
        app.get_agent(&app.admin, &name).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.docker_objects(), (vec![], vec![]));
}
