//! API tokens: how they are made and how they are stored (by hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Prefix of every token, so a leaked one is recognisable (secret scanners,
/// logs) and a pasted value of the wrong kind is obvious.
pub const TOKEN_PREFIX: &str = "lmt_";

/// A new API token: `lmt_` and 43 base64url characters (32 random bytes).
///
/// # Panics
///
/// If the operating system's random source fails, which leaves no safe way
/// to make a token.
pub fn generate_token() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes)
        .unwrap_or_else(|error| panic!("the system random source failed: {error}"));
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of a token: SHA-256, lowercase hex.
///
/// A fast hash is right here, unlike for passwords: a token carries 256
/// random bits, so there is nothing to brute-force, and a slow KDF would only
/// slow every authenticated request.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
