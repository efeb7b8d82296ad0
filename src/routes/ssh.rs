//! SSH access to an agent: short-lived keys for flotilla's SSH gateway (owner or admin).
//!
//! The body is read by hand rather than through `web::Json`, so that an empty body means "all
//! defaults" and each wrongly typed field gets its own 422 naming it.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Auth;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A request for SSH access. Every field is optional; an empty body is accepted.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body, which is parsed by `parse_request`
pub struct SshAccessRequest {
    /// Hours the key stays valid, from 0.1 to 24 (default 4).
    #[schema(minimum = 0.1, maximum = 24.0, example = 4)]
    pub ttl_hours: Option<f64>,
    /// Your OpenSSH public key (`ssh-ed25519 AAAA...`; ed25519, ECDSA or RSA of at least 2048
    /// bits). Without it, flotilla generates an ed25519 key pair and returns the private key,
    /// once.
    pub public_key: Option<String>,
}

/// How to connect.
#[derive(Debug, Serialize, ToSchema)]
pub struct SshConnection {
    pub host: String,
    pub port: u16,
    /// Always `developer`.
    pub user: String,
    /// A ready-to-paste command (with `-i` naming where to save a generated key).
    pub command: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SshAccessBody {
    pub agent: String,
    pub connection: SshConnection,
    /// When the key stops working (and any session opened with it ends).
    pub expires_at: DateTime<Utc>,
    /// SHA-256 fingerprint of the key, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The generated private key (OpenSSH format), only when no `public_key` was sent. Returned
    /// this once and stored nowhere: save it with mode 0600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SshRevokedBody {
    pub message: String,
    /// Keys that were still valid and are now refused.
    pub revoked_keys: usize,
}

/// `ttl_hours` and `public_key` from the raw body.
fn parse_request(body: &[u8]) -> Result<(Option<f64>, Option<String>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    // A misspelt field must not silently fall back to a default (and issue a key anyway).
    if let Some(unknown) = fields
        .keys()
        .find(|k| !matches!(k.as_str(), "ttl_hours" | "public_key"))
    {
        return Err(ApiError::invalid(
            "body",
            format!("unknown field '{unknown}' (expected ttl_hours, public_key)"),
        ));
    }
    let ttl_hours = match fields.get("ttl_hours") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => {
            return Err(ApiError::invalid(
                "ttl_hours",
                "must be a number of hours from 0.1 to 24",
            ));
        }
    };
    let public_key = match fields.get("public_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "public_key",
                "must be a string holding an OpenSSH public key",
            ));
        }
    };
    Ok((ttl_hours, public_key))
}

/// Grant SSH access to a running agent (owner or admin): register your public key, or get a
/// generated key pair, valid for `ttl_hours`. Log in with the returned command; the session
/// runs as `developer` in the agent's container.
#[utoipa::path(post, path = "/api/agents/{name}/ssh-access", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    request_body(content = SshAccessRequest, content_type = "application/json"),
    responses((status = 200, body = SshAccessBody), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent is not running, or has too many valid keys", body = ErrorBody),
        (status = 422, description = "ttl_hours out of bounds or not a number; public_key unparsable or of a refused type", body = ErrorBody)))]
pub async fn grant(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (ttl_hours, public_key) = parse_request(&body)?;
    let grant = state
        .fleet
        .grant_ssh_access(&auth.principal, &name, ttl_hours, public_key.as_deref())
        .await?;
    let body = SshAccessBody {
        agent: grant.agent.clone(),
        connection: SshConnection {
            host: grant.host.clone(),
            port: grant.port,
            user: grant.user.to_string(),
            command: grant.command.clone(),
        },
        expires_at: grant.expires_at,
        fingerprint: grant.fingerprint.clone(),
        private_key: grant.private_key.as_ref().map(|k| k.expose().to_string()),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(body))
}

/// Revoke every SSH key of the agent (owner or admin): further logins are refused at once and
/// open sessions end.
#[utoipa::path(delete, path = "/api/agents/{name}/ssh-access", tag = "agents", security(("bearer" = [])),
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, body = SshRevokedBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Shared user", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn revoke(
    auth: Auth,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked_keys = state
        .fleet
        .revoke_ssh_access(&auth.principal, &name)
        .await?;
    Ok(HttpResponse::Ok().json(SshRevokedBody {
        message: format!("SSH access to agent {name} revoked"),
        revoked_keys,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_with_defaults_and_name_bad_fields() {
        assert_eq!(parse_request(b"").unwrap(), (None, None));
        assert_eq!(parse_request(b" {} ").unwrap(), (None, None));
        assert_eq!(
            parse_request(br#"{"ttl_hours": 2.5, "public_key": "k"}"#).unwrap(),
            (Some(2.5), Some("k".into()))
        );
        let e = parse_request(br#"{"ttl_hours": "4"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.detail.starts_with("ttl_hours"), "{}", e.detail);
        let e = parse_request(br#"{"public_key": 7}"#).unwrap_err();
        assert!(e.detail.starts_with("public_key"), "{}", e.detail);
        assert_eq!(parse_request(b"[1]").unwrap_err().status.as_u16(), 422);
        assert_eq!(parse_request(b"{nope").unwrap_err().status.as_u16(), 400);
    }
}
