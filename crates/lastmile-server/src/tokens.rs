//! API tokens: made here, shown once, stored only as a hash.

use lastmile_store::{Role, Store, StoreError, TokenRecord, generate_token, hash_token};

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name cannot name an actor in the event log.
    #[error(
        "token name `{0}` must be 1-64 letters, digits, `-`, `_`, `.` or `@` (it names who acts in the event log)"
    )]
    InvalidName(String),
    /// The store refused it; [`StoreError::TokenNameTaken`] when another
    /// active token has the name.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token named `name` with `role`; returns its record and the
/// token itself, which is shown once and never stored.
pub fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    actor: &str,
) -> Result<(TokenRecord, String), TokenError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'@')
    {
        return Err(TokenError::InvalidName(name.to_owned()));
    }
    let token = generate_token();
    let record = store.create_token(name, role, &hash_token(&token), actor)?;
    Ok((record, token))
}
