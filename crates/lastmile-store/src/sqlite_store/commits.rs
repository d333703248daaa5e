//! Commits the watcher saw (by polling or webhook) and what became of each.

use rusqlite::{OptionalExtension, Row, params};
use serde_json::json;

use super::{SYSTEM_ACTOR, SqliteStore, append_event, clamp, now_millis, parse_column};
use crate::StoreError;
use crate::model::{CommitRecord, CommitStatus, RunId};

const COMMIT_COLUMNS: &str = "SELECT app, sha, branch, committed_at, author, subject, seen_at, source, status, run_id, release_id, error FROM commits";

pub(super) fn record_commit(
    store: &SqliteStore,
    commit: &CommitRecord,
) -> Result<bool, StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        let inserted = transaction.execute(
            "INSERT OR IGNORE INTO commits
             (app, sha, branch, committed_at, author, subject, seen_at, source, status, run_id, release_id, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                commit.app,
                commit.sha,
                commit.branch,
                commit.committed_at,
                commit.author,
                commit.subject,
                commit.seen_at,
                commit.source,
                commit.status.as_str(),
                commit.run_id,
                commit.release_id,
                commit.error,
            ],
        )?;
        // A poll and a webhook may both report the same commit: the first wins.
        if inserted == 0 {
            return Ok(false);
        }
        append_event(
            transaction,
            now,
            "commit.seen",
            &format!("commit/{}/{}", commit.app, commit.sha),
            SYSTEM_ACTOR,
            &json!({
                "app": commit.app,
                "sha": commit.sha,
                "branch": commit.branch,
                "author": commit.author,
                "subject": commit.subject,
                "source": commit.source,
                "status": commit.status,
            }),
        )?;
        Ok(true)
    })
}

pub(super) fn update_commit(
    store: &SqliteStore,
    app: &str,
    sha: &str,
    status: CommitStatus,
    run_id: Option<RunId>,
    release_id: Option<&str>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        let changed = transaction.execute(
            "UPDATE commits SET status = ?3,
                 run_id = COALESCE(?4, run_id),
                 release_id = COALESCE(?5, release_id),
                 error = COALESCE(?6, error)
             WHERE app = ?1 AND sha = ?2",
            params![app, sha, status.as_str(), run_id, release_id, error],
        )?;
        if changed == 0 {
            return Err(StoreError::CommitNotFound {
                app: app.to_owned(),
                sha: sha.to_owned(),
            }
            .into());
        }
        append_event(
            transaction,
            now,
            "commit.updated",
            &format!("commit/{app}/{sha}"),
            SYSTEM_ACTOR,
            &json!({
                "status": status,
                "run_id": run_id,
                "release_id": release_id,
                "error": error,
            }),
        )?;
        Ok(())
    })
}

pub(super) fn get_commit(
    store: &SqliteStore,
    app: &str,
    sha: &str,
) -> Result<Option<CommitRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{COMMIT_COLUMNS} WHERE app = ?1 AND sha = ?2"))?
            .query_row(params![app, sha], commit_from_row)
            .optional()
    })
}

pub(super) fn list_commits(
    store: &SqliteStore,
    app: &str,
    limit: usize,
) -> Result<Vec<CommitRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!(
                "{COMMIT_COLUMNS} WHERE app = ?1 ORDER BY seen_at DESC, rowid DESC LIMIT ?2"
            ))?
            .query_map(params![app, clamp(limit)], commit_from_row)?
            .collect()
    })
}

fn commit_from_row(row: &Row<'_>) -> rusqlite::Result<CommitRecord> {
    Ok(CommitRecord {
        app: row.get(0)?,
        sha: row.get(1)?,
        branch: row.get(2)?,
        committed_at: row.get(3)?,
        author: row.get(4)?,
        subject: row.get(5)?,
        seen_at: row.get(6)?,
        source: row.get(7)?,
        status: parse_column(row, 8, |text| text.parse().ok())?,
        run_id: row.get(9)?,
        release_id: row.get(10)?,
        error: row.get(11)?,
    })
}
