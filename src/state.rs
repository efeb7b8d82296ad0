//! The application state every handler receives: the `Fleet` handle and the auth services.
//! One instance, shared by all HTTP workers through `web::Data`.

use flotilla_actors::Fleet;

use crate::auth::limiter::LoginLimiter;
use crate::auth::token::TokenService;

pub struct AppState {
    pub fleet: Fleet,
    pub tokens: TokenService,
    pub login_limiter: LoginLimiter,
    /// Hash checked against when a login names an unknown user, so timing does not reveal
    /// which usernames exist.
    pub decoy_hash: String,
}
