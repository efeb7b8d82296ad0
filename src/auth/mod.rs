//! Authentication: password hashing, JWT issue and verification, the request extractor that
//! guards every protected route, and login brute-force limiting.

pub mod extractor;
pub mod limiter;
pub mod password;
pub mod token;

pub use extractor::Auth;
