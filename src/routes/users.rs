//! User accounts: who am I, change my password, and (admins) create, list and delete users.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::{Role, User, validate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, password};
use crate::error::{ApiError, ErrorBody};
use crate::routes::auth::{MessageResponse, client_ip, verify_counted};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    /// Login name: an email, or `admin`.
    pub username: String,
    /// The email, for users that log in by email.
    pub email: Option<String>,
    /// `admin` or `user`.
    pub role: &'static str,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            username: u.username.clone(),
            email: u.username.contains('@').then(|| u.username.clone()),
            role: u.role.as_str(),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserBody {
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// `user` (default) or `admin`.
    pub role: Option<String>,
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserBody), (status = 401, body = ErrorBody)))]
pub async fn me(auth: Auth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user = state
        .fleet
        .accounts()
        .user(&auth.principal.username)
        .ok_or_else(|| ApiError::unauthorized("token's user no longer exists"))?;
    Ok(HttpResponse::Ok().json(UserBody::from(user.as_ref())))
}

/// Every user (admin only).
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserBody>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(auth: Auth, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let users: Vec<UserBody> = state
        .fleet
        .accounts()
        .users()
        .iter()
        .map(|u| UserBody::from(u.as_ref()))
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

/// Create a user who logs in by email (admin only). Agents already shared with that email
/// become visible to the new user at once.
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserBody,
    responses((status = 200, body = UserBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "Email taken", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create(
    auth: Auth,
    state: web::Data<AppState>,
    body: crate::routes::json::JsonObject<CreateUserBody>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let body = body.into_inner();
    let email = validate::email(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    validate::password(&body.password).map_err(|e| ApiError::invalid("password", e))?;
    let role = match body.role.as_deref() {
        None => Role::User,
        Some(r) => r
            .parse()
            .map_err(|()| ApiError::invalid("role", format!("'{r}' is not one of admin, user")))?,
    };
    let user = User {
        username: email,
        role,
        password_hash: password::hash(body.password).await?,
        // Starts at the creation time, not 0: tokens of a deleted account with the same email
        // (whose versions were small) never match a re-created one.
        token_version: Utc::now().timestamp_millis(),
        created_at: Utc::now(),
    };
    let response = UserBody::from(&user);
    state.fleet.create_user(user).await?;
    Ok(HttpResponse::Ok().json(response))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordBody {
    pub current_password: String,
    /// At least 8 characters.
    pub new_password: String,
}

/// Change the caller's own password. Every token issued to the caller before, this request's
/// included, stops working at once: log in again with the new password. A wrong current
/// password counts as a failed login for the client's address (429 once it has too many).
#[utoipa::path(put, path = "/api/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordBody,
    responses((status = 200, body = MessageResponse),
        (status = 401, description = "Bad token, or wrong current password", body = ErrorBody),
        (status = 422, description = "The new password is not acceptable", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords", body = ErrorBody)))]
pub async fn change_password(
    req: HttpRequest,
    auth: Auth,
    state: web::Data<AppState>,
    body: crate::routes::json::JsonObject<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req);
    state.login_limiter.check(ip)?;
    let body = body.into_inner();
    let username = auth.principal.username.clone();
    let user = state
        .fleet
        .accounts()
        .user(&username)
        .ok_or_else(|| ApiError::unauthorized("token's user no longer exists"))?;
    let hash = user.password_hash.clone();
    if !verify_counted(&state, ip, body.current_password, hash, true).await? {
        return Err(ApiError::unauthorized(
            "current_password: incorrect password",
        ));
    }
    validate::password(&body.new_password).map_err(|e| ApiError::invalid("new_password", e))?;
    let hash = password::hash(body.new_password).await?;
    state.fleet.set_password(&username, hash).await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: "password changed; every earlier token of this account is revoked".into(),
    }))
}

/// Delete a user (admin only; not `admin`, not yourself). Refused (409) while the user owns
/// agents. Their tokens stop working at once, and the agents shared with their email are
/// shared no more.
#[utoipa::path(delete, path = "/api/users/{email}", tag = "users", security(("bearer" = [])),
    params(("email" = String, Path, description = "The user's email")),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin; or the admin or your own account", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The user still owns agents", body = ErrorBody)))]
pub async fn delete(
    auth: Auth,
    state: web::Data<AppState>,
    email: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let email = email.into_inner();
    state.fleet.delete_user(&auth.principal, &email).await?;
    Ok(HttpResponse::Ok().json(MessageResponse {
        message: format!("user {} deleted", email.trim().to_lowercase()),
    }))
}
