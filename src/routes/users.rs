//! User accounts: who am I, and (admins) create and list users.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use flotilla_actors::{Role, User, validate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, password};
use crate::error::{ApiError, ErrorBody};
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
    body: web::Json<CreateUserBody>,
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
        token_version: 0,
        created_at: Utc::now(),
    };
    let response = UserBody::from(&user);
    state.fleet.create_user(user).await?;
    Ok(HttpResponse::Ok().json(response))
}
