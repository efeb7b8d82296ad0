//! Access tokens: HS256 JWTs with `sub`, `iat`, `nbf`, `exp`, `jti`, issuer and audience, and
//! `ver` — the user's token version when it was issued (a password change bumps it, revoking
//! every older token at once). Only HS256 is accepted: `alg: none`, other HMAC sizes and every
//! asymmetric algorithm are refused before the signature is even looked at.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "flotilla";
pub const AUDIENCE: &str = "flotilla-api";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub ver: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading or writing the JWT secret at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the JWT secret is unusable: {0}")]
    Invalid(String),
}

impl TokenService {
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, SecretError> {
        let invalid = |e: jsonwebtoken::errors::Error| SecretError::Invalid(e.to_string());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret).map_err(invalid)?,
            decoding: DecodingKey::from_secret(secret).map_err(invalid)?,
            validation,
            ttl,
        })
    }

    /// Issue a token for `username` under its current token version.
    pub fn issue(&self, username: &str, version: i64) -> Result<(String, Claims), String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: username.to_string(),
            iat: now,
            nbf: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(3600),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ver: version,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map(|t| (t, claims))
            .map_err(|e| e.to_string())
    }

    /// Verify signature, algorithm and time claims. Says why a token is refused.
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        use jsonwebtoken::errors::ErrorKind as K;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                K::ExpiredSignature => "token has expired",
                K::ImmatureSignature => "token is not valid yet",
                K::InvalidSignature => "token signature is invalid",
                K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => {
                    "token algorithm is not accepted"
                }
                _ => "token is malformed",
            })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The signing secret: `configured` if given, else the one kept in `data_dir/jwt-secret`,
/// generated (32 random bytes) and written there with mode 0600 on first start. Persisting it
/// keeps tokens valid across restarts.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        if secret.len() < 16 {
            return Err(SecretError::Invalid(
                "FLOTILLA_JWT_SECRET must be at least 16 characters".into(),
            ));
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(io)?;
            let secret: [u8; 32] = rand::random();
            let text = base64::engine::general_purpose::STANDARD.encode(secret);
            write_private(&path, text.as_bytes()).map_err(io)?;
            Ok(secret.to_vec())
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> TokenService {
        TokenService::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60)).unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let s = service();
        let (token, claims) = s.issue("admin", 3).unwrap();
        assert_eq!(s.verify(&token).unwrap(), claims);
    }

    #[test]
    fn alg_none_and_tampering_are_refused() {
        let s = service();
        let (token, _) = s.issue("alice@example.com", 0).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = engine.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(s.verify(&format!("{none}.{}.", parts[1])).is_err());
        let payload = String::from_utf8(engine.decode(parts[1]).unwrap()).unwrap();
        let forged = engine.encode(payload.replace("alice@example.com", "admin"));
        assert!(
            s.verify(&format!("{}.{forged}.{}", parts[0], parts[2]))
                .is_err()
        );
        let other =
            TokenService::new(b"another-secret-another-secret!!", Duration::from_secs(60)).unwrap();
        assert!(other.verify(&token).is_err());
    }
}
