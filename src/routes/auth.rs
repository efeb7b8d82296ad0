//! Login and logout.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, password};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Longest password checked (hashing is deliberately expensive; nothing longer is ever valid).
pub const MAX_PASSWORD: usize = 1024;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// An email, or `admin`.
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

fn parse_credentials(req: &HttpRequest, body: &[u8]) -> Result<LoginRequest, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                ApiError::invalid("body", e)
            } else {
                ApiError::bad_request(format!("malformed JSON: {e}"))
            }
        })
    } else if content_type.is_empty()
        || content_type.starts_with("application/x-www-form-urlencoded")
    {
        serde_urlencoded::from_bytes(body).map_err(|e| ApiError::invalid("body", e))
    } else {
        Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the credentials as a form or as JSON",
        ))
    }
}

/// The client's address, the key of the login limiter (unspecified if the connection has none).
pub(crate) fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Check a password given to log in or to change it: true if `password` matches `hash` and
/// `known` (the account exists). Anything else counts as a failed login of the client `ip`,
/// and once the client is over its limit the answer is the limiter's 429. Passwords longer
/// than [`MAX_PASSWORD`] never match and are not hashed.
pub(crate) async fn verify_counted(
    state: &AppState,
    ip: IpAddr,
    password: String,
    hash: String,
    known: bool,
) -> Result<bool, ApiError> {
    let matched = password.len() <= MAX_PASSWORD && password::verify(password, hash).await?;
    if matched && known {
        return Ok(true);
    }
    match state.login_limiter.record_failure(ip) {
        Some(limited) => Err(limited),
        None => Ok(false),
    }
}

/// Exchange a username and password for an access token. Failed attempts are rate-limited per
/// client IP (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/token", tag = "auth",
    request_body(description = "Credentials, as a form or as JSON", content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"))),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many failed attempts", body = ErrorBody)))]
pub async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req);
    state.login_limiter.check(ip)?;
    let credentials = parse_credentials(&req, &body)?;
    let username = credentials.username.trim().to_lowercase();
    let user = state.fleet.accounts().user(&username);
    // An unknown user is checked against a decoy hash: the answer takes as long either way.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.decoy_hash.clone());
    let verified = verify_counted(&state, ip, credentials.password, hash, user.is_some()).await?;
    let Some(user) = user.filter(|_| verified) else {
        return Err(ApiError::from(flotilla_actors::FleetError::BadCredentials));
    };
    let (token, _) = state
        .tokens
        .issue(&user.username, user.token_version)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token,
        token_type: "bearer",
        expires_in: state.tokens.ttl().as_secs(),
    }))
}

/// Revoke the token this request carries.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody)))]
pub async fn logout(auth: Auth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .fleet
        .revoke_token(auth.claims.jti.clone(), auth.claims.exp)
        .await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: "logged out".into(),
    }))
}
