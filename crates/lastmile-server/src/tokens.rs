//! API tokens: made here, shown once, stored only as a hash.

use lastmile_store::{Role, Store, TokenRecord, generate_token, hash_token};

/// Creates a token named `name` with `role`; returns its record and the
/// token itself, which is shown once and never stored.
pub fn create(
    store: &dyn Store,
    name: &str,
    role: Role,
    actor: &str,
) -> Result<(TokenRecord, String), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'@')
    {
        return Err(format!(
            "token name `{name}` must be 1-64 letters, digits, `-`, `_`, `.` or `@` (it names who acts in the event log)"
        ));
    }
    let token = generate_token();
    let record = store
        .create_token(name, role, &hash_token(&token), actor)
        .map_err(|error| error.to_string())?;
    Ok((record, token))
}
