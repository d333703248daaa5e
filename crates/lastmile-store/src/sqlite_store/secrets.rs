//! Secrets in SQLite: sealed bytes only (see `SecretBox`); the store never
//! sees a value, and its events name the secret, not its contents.

use rusqlite::{OptionalExtension, params};
use serde_json::json;

use super::{SqliteStore, append_event, now_millis};
use crate::StoreError;
use crate::model::{SealedSecret, SecretRecord};

pub(super) fn put_secret(
    store: &SqliteStore,
    app: &str,
    name: &str,
    nonce: &[u8],
    ciphertext: &[u8],
    actor: &str,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        transaction.execute(
            "INSERT INTO secrets (app, name, nonce, ciphertext, updated_at, updated_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (app, name) DO UPDATE
             SET nonce = ?3, ciphertext = ?4, updated_at = ?5, updated_by = ?6",
            params![app, name, nonce, ciphertext, now, actor],
        )?;
        append_event(
            transaction,
            now,
            "secret.set",
            &format!("secret/{app}/{name}"),
            actor,
            &json!({ "app": app, "name": name }),
        )?;
        Ok(())
    })
}

pub(super) fn get_secret(
    store: &SqliteStore,
    app: &str,
    name: &str,
) -> Result<Option<SealedSecret>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached("SELECT nonce, ciphertext FROM secrets WHERE app = ?1 AND name = ?2")?
            .query_row(params![app, name], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
    })
}

pub(super) fn list_secrets(
    store: &SqliteStore,
    app: &str,
) -> Result<Vec<SecretRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(
                "SELECT app, name, updated_at, updated_by FROM secrets WHERE app = ?1 ORDER BY name",
            )?
            .query_map([app], |row| {
                Ok(SecretRecord {
                    app: row.get(0)?,
                    name: row.get(1)?,
                    updated_at: row.get(2)?,
                    updated_by: row.get(3)?,
                })
            })?
            .collect()
    })
}

pub(super) fn delete_secret(
    store: &SqliteStore,
    app: &str,
    name: &str,
    actor: &str,
) -> Result<bool, StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        let removed = transaction.execute(
            "DELETE FROM secrets WHERE app = ?1 AND name = ?2",
            params![app, name],
        )?;
        if removed > 0 {
            append_event(
                transaction,
                now,
                "secret.deleted",
                &format!("secret/{app}/{name}"),
                actor,
                &json!({ "app": app, "name": name }),
            )?;
        }
        Ok(removed > 0)
    })
}
