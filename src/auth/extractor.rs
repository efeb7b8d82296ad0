//! The `Auth` extractor: every protected handler takes one, so a route cannot forget to check
//! the token. It accepts `Authorization: Bearer <jwt>` and refuses (401) a missing, malformed,
//! badly signed, expired, not-yet-valid or revoked token, a token of a deleted user, and a
//! token issued before the user's last password change. An authenticated caller over their
//! per-user request rate is refused next (429 with `Retry-After`; see `auth::limiter`).

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use flotilla_actors::Principal;

use super::token::Claims;
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth {
    pub principal: Principal,
    pub claims: Claims,
}

impl Auth {
    /// Refuse (403) unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an admin may do this"))
        }
    }
}

/// The token in an `Authorization: Bearer` header.
pub fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("malformed authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized("expected a bearer token"));
    }
    Ok(token.trim())
}

/// Check a raw token against signature, expiry, revocation and the user's current state.
pub fn authenticate(state: &AppState, token: &str) -> Result<Auth, ApiError> {
    let claims = state.tokens.verify(token).map_err(ApiError::unauthorized)?;
    let accounts = state.fleet.accounts();
    if accounts.is_revoked(&claims.jti) {
        return Err(ApiError::unauthorized("token has been revoked"));
    }
    let user = accounts
        .user(&claims.sub)
        .ok_or_else(|| ApiError::unauthorized("token's user no longer exists"))?;
    if user.token_version != claims.ver {
        return Err(ApiError::unauthorized(
            "token has been revoked by a password change",
        ));
    }
    Ok(Auth {
        principal: Principal {
            username: user.username.clone(),
            role: user.role,
        },
        claims,
    })
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => bearer(req)
                .and_then(|token| authenticate(state, token))
                .and_then(|auth| {
                    state.api_limiter.check(&auth.principal.username)?;
                    Ok(auth)
                }),
            None => Err(ApiError::internal("application state missing")),
        };
        ready(result)
    }
}
