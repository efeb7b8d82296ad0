//! Password hashing with argon2id (the crate's default parameters), always off the async
//! threads: hashing costs tens of milliseconds of CPU by design.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::ApiError;

/// Hash a password into a PHC string.
pub async fn hash(password: String) -> Result<String, ApiError> {
    actix_web::web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing thread failed: {e}")))?
    .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
}

/// Check a password against a PHC string. A malformed hash never matches.
pub async fn verify(password: String, hash: String) -> Result<bool, ApiError> {
    actix_web::web::block(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|e| ApiError::internal(format!("hashing thread failed: {e}")))
}

/// A hash of a random password, verified against when the username is unknown so that response
/// times do not reveal which usernames exist. Made once at start-up.
pub async fn decoy_hash() -> Result<String, ApiError> {
    let random: [u8; 24] = rand::random();
    hash(random.iter().map(|b| format!("{b:02x}")).collect()).await
}
