//! API tokens in SQLite: stored by hash only, looked up by hash.

use rusqlite::{ErrorCode, OptionalExtension, Row, params};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{SqliteStore, WriteError, append_event, now_millis, parse_column};
use crate::StoreError;
use crate::model::{Role, TokenRecord};

const TOKEN_COLUMNS: &str =
    "SELECT id, name, role, created_at, created_by, last_used_at, revoked_at FROM tokens";

/// `last_used_at` is rewritten at most this often: a busy client would
/// otherwise turn every authenticated read into a write.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

pub(super) fn create_token(
    store: &SqliteStore,
    name: &str,
    role: Role,
    hash: &str,
    actor: &str,
) -> Result<TokenRecord, StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        // A revoked token gives its name up (the error for a taken name says
        // to revoke it); its history stays in the event log.
        transaction.execute(
            "DELETE FROM tokens WHERE name = ?1 AND revoked_at IS NOT NULL",
            [name],
        )?;
        let inserted = transaction.execute(
            "INSERT INTO tokens (name, role, hash, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role.as_str(), hash, now, actor],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(failure, Some(message)))
                if failure.code == ErrorCode::ConstraintViolation
                    && message.contains("tokens.name") =>
            {
                return Err(StoreError::TokenNameTaken {
                    name: name.to_owned(),
                }
                .into());
            }
            Err(error) => return Err(error.into()),
        }
        let id = transaction.last_insert_rowid();
        append_event(
            transaction,
            now,
            "token.created",
            &format!("token/{name}"),
            actor,
            &json!({ "id": id, "name": name, "role": role }),
        )?;
        let record = transaction
            .prepare_cached(&format!("{TOKEN_COLUMNS} WHERE id = ?1"))?
            .query_row([id], token_from_row)?;
        Ok::<_, WriteError>(record)
    })
}

pub(super) fn token_by_hash(
    store: &SqliteStore,
    hash: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let found: Option<(TokenRecord, String)> = store.read(|connection| {
        connection
            .prepare_cached(
                "SELECT id, name, role, created_at, created_by, last_used_at, revoked_at, hash
                 FROM tokens WHERE hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], |row| Ok((token_from_row(row)?, row.get(7)?)))
            .optional()
    })?;
    let Some((mut record, stored)) = found else {
        return Ok(None);
    };
    // The index lookup already matched; this re-check is constant-time so
    // that no comparison in Rust leaks how much of a guess was right.
    if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
        return Ok(None);
    }
    let now = now_millis();
    let stale = record
        .last_used_at
        .is_none_or(|last| now - last >= LAST_USED_RESOLUTION_MS);
    if stale {
        // No event: use is not a change of state worth a line in the log.
        store.write(|transaction| {
            transaction
                .prepare_cached("UPDATE tokens SET last_used_at = ?2 WHERE id = ?1")?
                .execute(params![record.id, now])?;
            Ok(())
        })?;
        record.last_used_at = Some(now);
    }
    Ok(Some(record))
}

pub(super) fn list_tokens(store: &SqliteStore) -> Result<Vec<TokenRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{TOKEN_COLUMNS} ORDER BY id"))?
            .query_map([], token_from_row)?
            .collect()
    })
}

pub(super) fn revoke_token(
    store: &SqliteStore,
    name: &str,
    actor: &str,
) -> Result<bool, StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        let revoked = transaction.execute(
            "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now],
        )?;
        if revoked > 0 {
            append_event(
                transaction,
                now,
                "token.revoked",
                &format!("token/{name}"),
                actor,
                &json!({ "name": name }),
            )?;
        }
        Ok(revoked > 0)
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        role: parse_column(row, 2, |text| text.parse().ok())?,
        created_at: row.get(3)?,
        created_by: row.get(4)?,
        last_used_at: row.get(5)?,
        revoked_at: row.get(6)?,
    })
}
