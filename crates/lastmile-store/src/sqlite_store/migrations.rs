//! The schema, as an ordered list of scripts tracked by `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

/// Script `i` takes the schema from version `i` to `i + 1`. Append only:
/// a script that shipped is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: runs, steps, logs, artifacts, cache, append-only events.
    r#"
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        app         TEXT    NOT NULL,
        spec_dir    TEXT    NOT NULL,
        git_commit  TEXT,
        status      TEXT    NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        artifact_id TEXT,
        reason      TEXT,
        actor       TEXT    NOT NULL
    );
    CREATE INDEX runs_by_status ON runs (status);

    CREATE TABLE steps (
        run_id      INTEGER NOT NULL REFERENCES runs (id),
        name        TEXT    NOT NULL,
        position    INTEGER NOT NULL,
        status      TEXT    NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        started_at  INTEGER,
        finished_at INTEGER,
        cache_key   TEXT,
        PRIMARY KEY (run_id, name)
    ) WITHOUT ROWID;

    CREATE TABLE logs (
        run_id  INTEGER NOT NULL,
        step    TEXT    NOT NULL,
        seq     INTEGER NOT NULL,
        at      INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        stream  TEXT    NOT NULL,
        text    TEXT    NOT NULL,
        FOREIGN KEY (run_id, step) REFERENCES steps (run_id, name)
    );
    -- One step's lines in order; and a whole run's lines in insertion (rowid) order.
    CREATE UNIQUE INDEX logs_by_step ON logs (run_id, step, seq);
    CREATE INDEX logs_by_run ON logs (run_id);

    CREATE TABLE artifacts (
        id         TEXT    PRIMARY KEY,
        size       INTEGER NOT NULL,
        files      INTEGER NOT NULL,
        app        TEXT    NOT NULL,
        run_id     INTEGER REFERENCES runs (id),
        created_at INTEGER NOT NULL
    );
    CREATE INDEX artifacts_by_created_at ON artifacts (created_at);

    CREATE TABLE cache (
        key          TEXT    PRIMARY KEY,
        step         TEXT    NOT NULL,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        outputs_blob TEXT,
        created_at   INTEGER NOT NULL
    );

    CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        kind    TEXT    NOT NULL,
        subject TEXT    NOT NULL,
        actor   TEXT    NOT NULL,
        data    TEXT    NOT NULL CHECK (json_valid(data))
    );
    CREATE TRIGGER events_are_never_updated BEFORE UPDATE ON events
    BEGIN
        SELECT RAISE(ABORT, 'events are append-only: they cannot be updated');
    END;
    CREATE TRIGGER events_are_never_deleted BEFORE DELETE ON events
    BEGIN
        SELECT RAISE(ABORT, 'events are append-only: they cannot be deleted');
    END;
    "#,
    // 2: releases, environments, deployments and their transitions.
    r#"
    CREATE TABLE releases (
        id          TEXT    PRIMARY KEY,
        app         TEXT    NOT NULL,
        seq         INTEGER NOT NULL UNIQUE,
        artifact_id TEXT    NOT NULL,
        run_id      INTEGER REFERENCES runs (id),
        spec_source TEXT    NOT NULL,
        created_at  INTEGER NOT NULL
    );

    CREATE TABLE environments (
        name             TEXT    PRIMARY KEY,
        current_release  TEXT    REFERENCES releases (id),
        previous_release TEXT    REFERENCES releases (id),
        weights          TEXT    NOT NULL CHECK (json_valid(weights)),
        warm_until       INTEGER,
        updated_at       INTEGER NOT NULL
    );

    CREATE TABLE deployments (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        environment  TEXT    NOT NULL,
        from_release TEXT    REFERENCES releases (id),
        to_release   TEXT    NOT NULL REFERENCES releases (id),
        strategy     TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        phase        TEXT    NOT NULL,
        started_at   INTEGER NOT NULL,
        finished_at  INTEGER,
        error        TEXT,
        actor        TEXT    NOT NULL
    );
    -- At most one running deployment per environment, enforced by SQLite.
    CREATE UNIQUE INDEX one_running_deployment ON deployments (environment) WHERE status = 'running';

    CREATE TABLE deployment_steps (
        deployment_id INTEGER NOT NULL REFERENCES deployments (id),
        seq           INTEGER NOT NULL,
        at            INTEGER NOT NULL,
        phase         TEXT    NOT NULL,
        detail        TEXT    NOT NULL CHECK (json_valid(detail)),
        PRIMARY KEY (deployment_id, seq)
    ) WITHOUT ROWID;
    "#,
    // 3: runtime flag overrides (drift from the flags in lastmile.yaml).
    r#"
    CREATE TABLE flag_overrides (
        key        TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL CHECK (json_valid(value)),
        actor      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    );
    "#,
    // 4: API tokens (hashes only), encrypted secrets, commits seen by the watcher.
    r#"
    CREATE TABLE tokens (
        id           INTEGER PRIMARY KEY,
        name         TEXT    NOT NULL UNIQUE,
        role         TEXT    NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
        hash         TEXT    NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        created_by   TEXT    NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
    );

    CREATE TABLE secrets (
        app        TEXT    NOT NULL,
        name       TEXT    NOT NULL,
        nonce      BLOB    NOT NULL,
        ciphertext BLOB    NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT    NOT NULL,
        PRIMARY KEY (app, name)
    ) WITHOUT ROWID;

    CREATE TABLE commits (
        app          TEXT    NOT NULL,
        sha          TEXT    NOT NULL,
        branch       TEXT    NOT NULL,
        committed_at INTEGER NOT NULL,
        author       TEXT    NOT NULL,
        subject      TEXT    NOT NULL,
        seen_at      INTEGER NOT NULL,
        source       TEXT    NOT NULL, -- 'poll' | 'webhook'
        status       TEXT    NOT NULL, -- 'seen', 'running', 'built', 'failed', 'deployed', 'rolled-back'
        run_id       INTEGER,
        release_id   TEXT,
        error        TEXT,
        PRIMARY KEY (app, sha)
    );
    -- An app's commits, newest seen first.
    CREATE INDEX commits_by_seen ON commits (app, seen_at);
    "#,
    // 5: a finished deployment says why: `error` (which said only "failed;
    // traffic restored to the previous release") becomes `reason`, with the
    // last canary analysis beside it. Deployments recorded before are given
    // what the store still knows: an aborted canary's reason from its
    // `aborting` step, and the analysis of its last `canary.decision`.
    // Events are indexed by subject for a deployment's own timeline.
    r#"
    CREATE INDEX events_by_subject ON events (subject, id);
    ALTER TABLE deployments RENAME COLUMN error TO reason;
    ALTER TABLE deployments ADD COLUMN analysis TEXT CHECK (analysis IS NULL OR json_valid(analysis));
    UPDATE deployments
    SET reason = 'canary aborted: ' || (
        SELECT json_extract(step.detail, '$.reason') FROM deployment_steps AS step
        WHERE step.deployment_id = deployments.id AND step.phase = 'aborting'
          AND json_type(step.detail, '$.reason') = 'text'
        ORDER BY step.seq DESC LIMIT 1
    )
    WHERE status = 'failed' AND reason = 'failed; traffic restored to the previous release'
      AND EXISTS (
        SELECT 1 FROM deployment_steps AS step
        WHERE step.deployment_id = deployments.id AND step.phase = 'aborting'
          AND json_type(step.detail, '$.reason') = 'text'
      );
    UPDATE deployments
    SET analysis = (
        SELECT json_extract(event.data, '$.analysis') FROM events AS event
        WHERE event.kind = 'canary.decision' AND event.subject = 'deployment/' || deployments.id
          AND json_type(event.data, '$.analysis') = 'object'
        ORDER BY event.id DESC LIMIT 1
    )
    WHERE status != 'running';
    "#,
    // 6: the process group a running step leads, and its leader's start
    // time (against pid reuse), so a lastmile that was killed leaves no
    // step running once the store is opened again.
    r#"
    ALTER TABLE steps ADD COLUMN process_group INTEGER;
    ALTER TABLE steps ADD COLUMN process_started INTEGER;
    "#,
];

/// Newest schema version this build knows.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Outcome of reading the schema version before migrating.
pub(crate) enum Migrated {
    /// The schema is now `SCHEMA_VERSION`.
    UpToDate,
    /// The file is newer than this build (version found).
    TooNew(i64),
}

/// Applies every script the database has not seen, one transaction each.
pub(crate) fn migrate(connection: &mut Connection) -> rusqlite::Result<Migrated> {
    for (index, script) in MIGRATIONS.iter().enumerate() {
        let target = index as i64 + 1;
        if user_version(connection)? >= target {
            continue;
        }
        // IMMEDIATE, and the version re-read inside it, so two processes
        // opening a fresh store at once cannot both apply the same script.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if user_version(&transaction)? >= target {
            continue;
        }
        transaction.execute_batch(script)?;
        transaction.pragma_update(None, "user_version", target)?;
        transaction.commit()?;
    }
    let found = user_version(connection)?;
    Ok(if found > SCHEMA_VERSION {
        Migrated::TooNew(found)
    } else {
        Migrated::UpToDate
    })
}

fn user_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.pragma_query_value(None, "user_version", |row| row.get(0))
}

#[cfg(test)]
mod tests;
