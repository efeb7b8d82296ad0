//! Credentials of an agent: inject, status, export, import (owner or admin only; shared users
//! get 403, everyone else 404).
//!
//! Bodies are read by hand rather than through `web::Json`: an empty body has a meaning for
//! inject and export, and serde's messages quote the offending value — which here could be a
//! secret — so every error names the field and never repeats what was sent. The bodies may be
//! larger than elsewhere ([`BODY_LIMIT`]): a full vault is 1 MiB of files, and its bundle more.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use flotilla_actors::credentials::{CredentialStatus, ExportKey, ImportKey, InjectReport, Secret};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Largest request body of the credential routes.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// Files to inject. With no body (or `{}`), the host's credential files for the agent's
/// runtime are injected instead (`FLOTILLA_HOST_CREDENTIALS_DIR`).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body, which is parsed by hand
pub struct InjectRequest {
    /// Path (relative to `/home/developer`, or absolute inside it) → file content. At most 64
    /// files of at most 256 KiB each, 1 MiB in all.
    #[schema(example = json!({".env": "ANTHROPIC_API_KEY=...\n"}))]
    pub files: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InjectBody {
    pub agent_name: String,
    /// Paths written (mode 0600, owned by uid 1000), relative to `/home/developer`.
    pub files_written: Vec<String>,
    /// Files in the agent's vault now (re-injected at every start).
    pub vault_files: usize,
    /// `request`, `host` or `bundle`.
    pub source: &'static str,
}

impl From<InjectReport> for InjectBody {
    fn from(r: InjectReport) -> Self {
        Self {
            agent_name: r.agent_name,
            files_written: r.files_written,
            vault_files: r.vault_files,
            source: r.source.as_str(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileStatusBody {
    pub exists: bool,
    /// Bytes; null when the file does not exist.
    pub size: Option<u64>,
    /// RFC 3339; null when the file does not exist.
    pub modified: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialStatusBody {
    pub agent_name: String,
    /// `.env`, `.mcp.json` and every injected path.
    pub files: BTreeMap<String, FileStatusBody>,
    /// `KEY=` lines in `.env` (values are never returned).
    pub credential_count: usize,
}

impl From<CredentialStatus> for CredentialStatusBody {
    fn from(s: CredentialStatus) -> Self {
        Self {
            agent_name: s.agent_name,
            files: s
                .files
                .into_iter()
                .map(|(path, f)| {
                    (
                        path,
                        FileStatusBody {
                            exists: f.exists,
                            size: f.size,
                            modified: f.modified,
                        },
                    )
                })
                .collect(),
            credential_count: s.credential_count,
        }
    }
}

/// Whom to seal an export for: a passphrase, an age recipient, or (neither) this server.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body, which is parsed by hand
pub struct ExportRequest {
    /// At least 8 characters. Open the bundle with `age -d` or import it with the same passphrase.
    pub passphrase: Option<String>,
    /// An age X25519 recipient, `age1...`.
    pub recipient: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportBody {
    pub agent_name: String,
    /// Always `age-armor`.
    pub format: &'static str,
    /// The vault's files as an ASCII-armored age file (`-----BEGIN AGE ENCRYPTED FILE-----`).
    pub bundle: String,
    /// Paths in the bundle.
    pub files: Vec<String>,
    /// `passphrase`, `recipient` or `server`.
    pub encrypted_to: &'static str,
}

/// A bundle to import, and what opens it: a passphrase, an age identity, or (neither) this
/// server's key.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body, which is parsed by hand
pub struct ImportRequest {
    /// An export bundle (ASCII-armored age file).
    pub bundle: String,
    pub passphrase: Option<String>,
    /// An age X25519 identity, `AGE-SECRET-KEY-1...`.
    pub identity: Option<String>,
}

/// The body as a JSON object; `None` when it is empty or `null`.
fn parse_object(body: &[u8], allowed: &[&str]) -> Result<Option<Map<String, Value>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    let fields = match value {
        Value::Null => return Ok(None),
        Value::Object(fields) => fields,
        _ => return Err(ApiError::invalid("body", "must be a JSON object")),
    };
    if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "body",
            format!(
                "unknown field '{unknown}' (expected {})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(Some(fields))
}

/// An optional string field, taken out of `fields`.
fn take_string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid(name, "must be a string")),
    }
}

/// The `files` of an inject body; `None` for the host's files.
fn parse_inject(body: &[u8]) -> Result<Option<Vec<(String, Secret)>>, ApiError> {
    let Some(mut fields) = parse_object(body, &["files"])? else {
        return Ok(None);
    };
    let files = match fields.remove("files") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(files)) => files,
        Some(_) => {
            return Err(ApiError::invalid(
                "files",
                "must be an object of path → file content",
            ));
        }
    };
    let mut entries = Vec::with_capacity(files.len());
    for (path, content) in files {
        match content {
            Value::String(content) => entries.push((path, Secret::from(content))),
            _ => {
                return Err(ApiError::invalid(
                    &format!("files[{path:?}]"),
                    "the content must be a string",
                ));
            }
        }
    }
    Ok(Some(entries))
}

/// Store files in the agent's credential vault and write them into its workspace (mode 0600,
/// owned by uid 1000), whether it runs, is stopped, or has a read-only workspace; the vault is
/// written again at every start. With no body, the host's credential files for the agent's
/// runtime are injected (`<dir>/<runtime>/...` and `<dir>/common/...`); when there are none, or
/// no directory is configured, the answer is 422.
#[utoipa::path(post, path = "/api/agents/{name}/credentials/inject", tag = "credentials", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body(content = InjectRequest, content_type = "application/json"),
    responses((status = 200, body = InjectBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent is being created or deleted", body = ErrorBody),
        (status = 413, description = "Too many files, a file over 256 KiB, or over 1 MiB in all (also counting the vault)", body = ErrorBody),
        (status = 422, description = "A path outside the workspace, a duplicate or clashing path, no files given and none on the host", body = ErrorBody)))]
pub async fn inject(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let files = parse_inject(&body)?;
    drop(body);
    let report = state
        .fleet
        .inject_credentials(&auth.principal, &name, files)
        .await?;
    Ok(HttpResponse::Ok().json(InjectBody::from(report)))
}

/// Which credential files the agent's workspace has: `.env`, `.mcp.json` and every injected
/// path (existence, size, modification time, read with the agent stopped too), and the number
/// of `KEY=` lines in `.env`. Contents are never returned.
#[utoipa::path(get, path = "/api/agents/{name}/credentials/status", tag = "credentials", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = CredentialStatusBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent has no container", body = ErrorBody)))]
pub async fn status(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let status = state
        .fleet
        .credentials_status(&auth.principal, &name)
        .await?;
    Ok(HttpResponse::Ok().json(CredentialStatusBody::from(status)))
}

/// Export the agent's credential vault as an ASCII-armored age bundle, sealed with a
/// passphrase (scrypt, work factor 2^16), for an age recipient, or — with neither — for this
/// server's own key (same-server backups).
#[utoipa::path(post, path = "/api/agents/{name}/credentials/export", tag = "credentials", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body(content = ExportRequest, content_type = "application/json"),
    responses((status = 200, body = ExportBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, description = "Unknown agent, or its vault is empty", body = ErrorBody),
        (status = 422, description = "Both a passphrase and a recipient, a short passphrase, or an invalid recipient", body = ErrorBody)))]
pub async fn export(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = match parse_object(&body, &["passphrase", "recipient"])? {
        None => ExportKey::Server,
        Some(mut fields) => {
            let passphrase = take_string(&mut fields, "passphrase")?;
            let recipient = take_string(&mut fields, "recipient")?;
            ExportKey::from_fields(passphrase, recipient)?
        }
    };
    drop(body);
    let exported = state
        .fleet
        .export_credentials(&auth.principal, &name, key)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(ExportBody {
            agent_name: exported.agent_name,
            format: "age-armor",
            bundle: exported.bundle,
            files: exported.files,
            encrypted_to: exported.sealed_for.as_str(),
        }))
}

/// Import an export bundle: open it (with the passphrase, the age identity, or — with neither
/// — this server's key), validate every path, then inject its files (vault and workspace). A
/// wrong passphrase or identity, or a damaged or altered bundle, is 422 and changes nothing.
#[utoipa::path(post, path = "/api/agents/{name}/credentials/import", tag = "credentials", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body(content = ImportRequest, content_type = "application/json"),
    responses((status = 200, body = InjectBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent is being created or deleted", body = ErrorBody),
        (status = 413, description = "The bundle, or the vault it would make, is too large", body = ErrorBody),
        (status = 422, description = "Wrong passphrase or identity, a damaged bundle, or a bad path in it", body = ErrorBody)))]
pub async fn import(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(mut fields) = parse_object(&body, &["bundle", "passphrase", "identity"])? else {
        return Err(ApiError::invalid("bundle", "is required"));
    };
    drop(body);
    let bundle = take_string(&mut fields, "bundle")?
        .ok_or_else(|| ApiError::invalid("bundle", "is required"))?;
    let passphrase = take_string(&mut fields, "passphrase")?;
    let identity = take_string(&mut fields, "identity")?;
    let key = ImportKey::from_fields(passphrase, identity)?;
    let report = state
        .fleet
        .import_credentials(&auth.principal, &name, bundle, key)
        .await?;
    Ok(HttpResponse::Ok().json(InjectBody::from(report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_bodies_parse_and_errors_never_quote_values() {
        assert!(parse_inject(b"").unwrap().is_none());
        assert!(parse_inject(b" {} ").unwrap().is_none());
        assert!(parse_inject(b"null").unwrap().is_none());
        let files = parse_inject(br#"{"files": {".env": "A=1"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, ".env");
        assert_eq!(files[0].1.expose(), b"A=1");
        for (body, status) in [
            (&br#"{"files": "TOPSECRET"}"#[..], 422),
            (br#"{"files": {"a": 12345}}"#, 422),
            (br#"{"files": {}, "x": "TOPSECRET"}"#, 422),
            (br#"["TOPSECRET"]"#, 422),
            (br#"{"files": {"a": "TOPSECRET"#, 400),
        ] {
            let e = parse_inject(body).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{}", e.detail);
            assert!(
                !e.detail.contains("TOPSECRET") && !e.detail.contains("12345"),
                "{}",
                e.detail
            );
        }
    }
}
