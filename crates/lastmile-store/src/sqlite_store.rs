//! `SqliteStore`: the embedded `Store`, one SQLite file in WAL mode.

mod commits;
mod deployments;
mod migrations;
mod run_lock;
mod secrets;
mod status_text;
mod tokens;

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use serde_json::json;

use crate::model::{
    ArtifactRecord, CacheEntry, CommitRecord, CommitStatus, DeploymentKind, DeploymentRecord,
    DeploymentStatus, DeploymentStep, EnvironmentState, Event, FlagOverrideRecord, LogLine, NewRun,
    Phase, ReleaseRecord, Role, Run, RunId, RunStatus, SealedSecret, SecretRecord, StepOutcome,
    StepRecord, StepStatus, TokenRecord, UnixMillis,
};
use crate::store::Store;
use crate::{StepProcess, StoreError};
use migrations::{Migrated, SCHEMA_VERSION};
use run_lock::Owner;

/// Why a run is marked interrupted when its owner is found dead.
const INTERRUPTED_REASON: &str = "the lastmile process running it stopped unexpectedly";

/// Actor of events lastmile writes on its own (not on anyone's behalf).
const SYSTEM_ACTOR: &str = "lastmile";

/// The database file name inside the state directory.
const DATABASE_FILE: &str = "lastmile.db";

/// What `SqliteStore::open` found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Runs whose owning process had died; now marked `interrupted`.
    pub interrupted_runs: Vec<RunId>,
}

/// The SQLite `Store`: `<state_dir>/lastmile.db`, WAL, one connection.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Mutex<Connection>,
    database_path: PathBuf,
    locks_dir: PathBuf,
    /// Lock files of the runs this store created and has not finished.
    run_locks: Mutex<HashMap<RunId, File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `state_dir`, migrates it, and
    /// marks runs whose owning process died as `interrupted`. A state
    /// directory it creates gets a `.gitignore` that ignores everything.
    pub fn open(state_dir: &Path) -> Result<(SqliteStore, OpenReport), StoreError> {
        let locks_dir = state_dir.join("locks");
        let creating = !state_dir.exists();
        fs::create_dir_all(&locks_dir)
            .map_err(StoreError::io("create the directory", &locks_dir))?;
        if creating {
            // The state usually sits in the app's repository (`.lastmile/`):
            // `git add .` must never commit its database, logs or artifacts.
            let ignore = state_dir.join(".gitignore");
            fs::write(&ignore, "# lastmile's state: never committed\n*\n")
                .map_err(StoreError::io("create", &ignore))?;
        }
        let database_path = state_dir.join(DATABASE_FILE);
        let sql = sql_error(&database_path);

        let mut connection = Connection::open(&database_path).map_err(&sql)?;
        // The busy timeout first: the pragmas below may wait on other processes.
        connection
            .busy_timeout(Duration::from_secs(5))
            .map_err(&sql)?;
        connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(&sql)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(&sql)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(&sql)?;
        connection.set_prepared_statement_cache_capacity(64);

        match migrations::migrate(&mut connection).map_err(&sql)? {
            Migrated::UpToDate => {}
            Migrated::TooNew(found) => {
                return Err(StoreError::SchemaTooNew {
                    path: database_path.clone(),
                    found,
                    known: SCHEMA_VERSION,
                });
            }
        }

        let store = SqliteStore {
            connection: Mutex::new(connection),
            database_path: database_path.clone(),
            locks_dir,
            run_locks: Mutex::new(HashMap::new()),
        };
        let interrupted_runs = store.interrupt_orphaned_runs()?;
        Ok((store, OpenReport { interrupted_runs }))
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        &self.database_path
    }

    /// Marks `running` runs whose lock nobody holds as `interrupted`.
    fn interrupt_orphaned_runs(&self) -> Result<Vec<RunId>, StoreError> {
        let sql = sql_error(&self.database_path);
        let running: Vec<RunId> = {
            let connection = self.connection();
            let mut statement = connection
                .prepare("SELECT id FROM runs WHERE status = 'running' ORDER BY id")
                .map_err(&sql)?;
            statement
                .query_map([], |row| row.get(0))
                .map_err(&sql)?
                .collect::<Result<_, _>>()
                .map_err(&sql)?
        };
        let mut interrupted = Vec::new();
        for run in running {
            let lock_path = run_lock::lock_path(&self.locks_dir, run);
            let Owner::Gone(lock) = run_lock::probe(&lock_path)? else {
                continue;
            };
            // The steps' processes first: once the run reads interrupted,
            // nothing is left running for it.
            for process in self.step_processes(run)? {
                process.kill_if_same();
            }
            if self.mark_interrupted(run)? {
                interrupted.push(run);
            }
            // Remove while still holding the lock, so no one takes a lock on
            // a file that is about to vanish and believes the run is owned.
            let _ = fs::remove_file(&lock_path);
            drop(lock);
        }
        Ok(interrupted)
    }

    /// The process groups recorded for a run's `running` steps.
    fn step_processes(&self, run: RunId) -> Result<Vec<StepProcess>, StoreError> {
        let sql = sql_error(&self.database_path);
        let connection = self.connection();
        let mut statement = connection
            .prepare(
                "SELECT process_group, process_started FROM steps
                 WHERE run_id = ?1 AND status = 'running' AND process_group IS NOT NULL",
            )
            .map_err(&sql)?;
        let rows = statement
            .query_map([run], |row| {
                Ok((row.get::<_, i32>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(&sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&sql)?;
        Ok(rows
            .into_iter()
            .filter_map(|(group, started)| {
                Some(StepProcess {
                    group,
                    started: u64::try_from(started).ok()?,
                })
            })
            .collect())
    }

    /// One transaction: the run, its unfinished steps, and `run.interrupted`.
    /// False when someone else got there first.
    fn mark_interrupted(&self, run: RunId) -> Result<bool, StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            let changed = transaction.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = ?2, reason = ?3
                 WHERE id = ?1 AND status = 'running'",
                params![run, now, INTERRUPTED_REASON],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            let steps_interrupted = transaction.execute(
                "UPDATE steps SET status = 'interrupted', finished_at = ?2
                 WHERE run_id = ?1 AND status = 'running'",
                params![run, now],
            )?;
            let steps_skipped = transaction.execute(
                "UPDATE steps SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
                params![run],
            )?;
            append_event(
                transaction,
                now,
                "run.interrupted",
                &format!("run/{run}"),
                SYSTEM_ACTOR,
                &json!({
                    "reason": INTERRUPTED_REASON,
                    "steps_interrupted": steps_interrupted,
                    "steps_skipped": steps_skipped,
                }),
            )?;
            Ok(true)
        })
    }

    /// Caps what SQLite keeps in memory for this store: the page cache (in
    /// KiB) and the prepared statements kept for reuse. A server holding
    /// many small app stores trades a little query speed (pages come from
    /// the OS cache instead) for memory that grows with the number of apps.
    pub fn limit_memory(&self, cache_kib: u32, statements: usize) -> Result<(), StoreError> {
        let connection = self.connection();
        connection
            .pragma_update(None, "cache_size", -i64::from(cache_kib))
            .map_err(sql_error(&self.database_path))?;
        connection.set_prepared_statement_cache_capacity(statements);
        connection.flush_prepared_statement_cache();
        Ok(())
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-call leaves no half-written state: an open transaction
        // rolls back when dropped. So a poisoned connection is still usable.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn run_locks(&self) -> MutexGuard<'_, HashMap<RunId, File>> {
        self.run_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `body` in an IMMEDIATE transaction, committing if it returns Ok.
    ///
    /// IMMEDIATE takes the write lock up front, so the busy timeout applies
    /// instead of a read-to-write upgrade failing at once.
    fn write<T>(
        &self,
        body: impl FnOnce(&Transaction<'_>) -> Result<T, WriteError>,
    ) -> Result<T, StoreError> {
        let sql = sql_error(&self.database_path);
        let mut connection = self.connection();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&sql)?;
        let value = body(&transaction).map_err(|error| match error {
            WriteError::Sqlite(error) => sql(error),
            WriteError::Store(error) => error,
        })?;
        transaction.commit().map_err(&sql)?;
        Ok(value)
    }

    /// Runs a read-only query.
    fn read<T>(
        &self,
        body: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let connection = self.connection();
        body(&connection).map_err(sql_error(&self.database_path))
    }

    /// Actor recorded for events about a run: whoever started it.
    fn run_actor(transaction: &Transaction<'_>, run: RunId) -> Result<String, WriteError> {
        transaction
            .prepare_cached("SELECT actor FROM runs WHERE id = ?1")?
            .query_row([run], |row| row.get(0))
            .optional()?
            .ok_or(WriteError::Store(StoreError::RunNotFound { run }))
    }
}

/// Errors inside a write transaction: SQLite's, or the store's own.
enum WriteError {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(error: rusqlite::Error) -> Self {
        WriteError::Sqlite(error)
    }
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        WriteError::Store(error)
    }
}

impl Store for SqliteStore {
    fn create_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        actor: &str,
    ) -> Result<TokenRecord, StoreError> {
        tokens::create_token(self, name, role, hash, actor)
    }

    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        tokens::token_by_hash(self, hash)
    }

    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        tokens::list_tokens(self)
    }

    fn revoke_token(&self, name: &str, actor: &str) -> Result<bool, StoreError> {
        tokens::revoke_token(self, name, actor)
    }

    fn put_secret(
        &self,
        app: &str,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        actor: &str,
    ) -> Result<(), StoreError> {
        secrets::put_secret(self, app, name, nonce, ciphertext, actor)
    }

    fn get_secret(&self, app: &str, name: &str) -> Result<Option<SealedSecret>, StoreError> {
        secrets::get_secret(self, app, name)
    }

    fn list_secrets(&self, app: &str) -> Result<Vec<SecretRecord>, StoreError> {
        secrets::list_secrets(self, app)
    }

    fn delete_secret(&self, app: &str, name: &str, actor: &str) -> Result<bool, StoreError> {
        secrets::delete_secret(self, app, name, actor)
    }

    fn record_commit(&self, commit: &CommitRecord) -> Result<bool, StoreError> {
        commits::record_commit(self, commit)
    }

    fn update_commit(
        &self,
        app: &str,
        sha: &str,
        status: CommitStatus,
        run_id: Option<RunId>,
        release_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        commits::update_commit(self, app, sha, status, run_id, release_id, error)
    }

    fn get_commit(&self, app: &str, sha: &str) -> Result<Option<CommitRecord>, StoreError> {
        commits::get_commit(self, app, sha)
    }

    fn list_commits(&self, app: &str, limit: usize) -> Result<Vec<CommitRecord>, StoreError> {
        commits::list_commits(self, app, limit)
    }

    fn set_flag_override(
        &self,
        key: &str,
        value: &serde_json::Value,
        actor: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            transaction.execute(
                "INSERT INTO flag_overrides (key, value, actor, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, actor = ?3, updated_at = ?4",
                params![key, value.to_string(), actor, now],
            )?;
            append_event(
                transaction,
                now,
                "flag.overridden",
                &format!("flag/{key}"),
                actor,
                value,
            )?;
            Ok(())
        })
    }

    fn clear_flag_override(&self, key: &str, actor: &str) -> Result<bool, StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            let removed =
                transaction.execute("DELETE FROM flag_overrides WHERE key = ?1", [key])?;
            if removed > 0 {
                append_event(
                    transaction,
                    now,
                    "flag.reset",
                    &format!("flag/{key}"),
                    actor,
                    &json!({}),
                )?;
            }
            Ok(removed > 0)
        })
    }

    fn flag_overrides(&self) -> Result<Vec<FlagOverrideRecord>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT key, value, actor, updated_at FROM flag_overrides ORDER BY key",
                )?
                .query_map([], |row| {
                    Ok(FlagOverrideRecord {
                        key: row.get(0)?,
                        value: parse_column(row, 1, |text| serde_json::from_str(text).ok())?,
                        actor: row.get(2)?,
                        updated_at: row.get(3)?,
                    })
                })?
                .collect()
        })
    }

    fn record_event(
        &self,
        kind: &str,
        subject: &str,
        actor: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            append_event(transaction, now, kind, subject, actor, data)?;
            Ok(transaction.last_insert_rowid())
        })
    }

    fn create_release(
        &self,
        app: &str,
        artifact_id: &str,
        run_id: Option<RunId>,
        spec_source: &str,
    ) -> Result<ReleaseRecord, StoreError> {
        deployments::create_release(self, app, artifact_id, run_id, spec_source)
    }

    fn list_releases(&self, limit: usize) -> Result<Vec<ReleaseRecord>, StoreError> {
        deployments::list_releases(self, limit)
    }

    fn get_release(&self, id: &str) -> Result<Option<ReleaseRecord>, StoreError> {
        deployments::get_release(self, id)
    }

    fn get_environment(&self, name: &str) -> Result<Option<EnvironmentState>, StoreError> {
        deployments::get_environment(self, name)
    }

    fn begin_deployment(
        &self,
        environment: &str,
        from_release: Option<&str>,
        to_release: &str,
        strategy: DeploymentKind,
        actor: &str,
    ) -> Result<DeploymentRecord, StoreError> {
        deployments::begin_deployment(self, environment, from_release, to_release, strategy, actor)
    }

    fn advance_deployment(
        &self,
        deployment: i64,
        phase: &Phase,
        detail: &serde_json::Value,
        environment: Option<&EnvironmentState>,
    ) -> Result<(), StoreError> {
        deployments::advance_deployment(self, deployment, phase, detail, environment)
    }

    fn finish_deployment(
        &self,
        deployment: i64,
        status: DeploymentStatus,
        reason: Option<&str>,
        analysis: Option<&serde_json::Value>,
        environment: Option<&EnvironmentState>,
    ) -> Result<(), StoreError> {
        deployments::finish_deployment(self, deployment, status, reason, analysis, environment)
    }

    fn put_environment(&self, environment: &EnvironmentState) -> Result<(), StoreError> {
        deployments::put_environment(self, environment)
    }

    fn running_deployment(
        &self,
        environment: &str,
    ) -> Result<Option<DeploymentRecord>, StoreError> {
        deployments::running_deployment(self, environment)
    }

    fn last_deployment(&self, environment: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        deployments::last_deployment(self, environment)
    }

    fn get_deployment(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError> {
        deployments::get_deployment(self, id)
    }

    fn list_deployments(&self, limit: usize) -> Result<Vec<DeploymentRecord>, StoreError> {
        deployments::list_deployments(self, limit)
    }

    fn deployment_steps(&self, deployment: i64) -> Result<Vec<DeploymentStep>, StoreError> {
        deployments::deployment_steps(self, deployment)
    }

    fn create_run(&self, new: &NewRun) -> Result<RunId, StoreError> {
        let now = now_millis();
        let (run, lock) = self.write(|transaction| {
            transaction.execute(
                "INSERT INTO runs (app, spec_dir, git_commit, status, started_at, actor)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
                params![new.app, new.spec_dir, new.commit, now, new.actor],
            )?;
            let run = transaction.last_insert_rowid();
            // Locked before commit: no other process can see this run
            // `running` without its lock already held.
            let lock = run_lock::acquire(&self.locks_dir, run)?;
            let mut insert_step = transaction.prepare_cached(
                "INSERT INTO steps (run_id, name, position, status) VALUES (?1, ?2, ?3, 'pending')",
            )?;
            for (position, step) in new.steps.iter().enumerate() {
                insert_step.execute(params![run, step, to_i64(position as u64)])?;
            }
            append_event(
                transaction,
                now,
                "run.started",
                &format!("run/{run}"),
                &new.actor,
                &json!({
                    "app": new.app,
                    "spec_dir": new.spec_dir,
                    "commit": new.commit,
                    "steps": new.steps,
                }),
            )?;
            Ok((run, lock))
        })?;
        self.run_locks().insert(run, lock);
        Ok(run)
    }

    fn start_step(&self, run: RunId, step: &str, attempt: u32) -> Result<(), StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            let actor = SqliteStore::run_actor(transaction, run)?;
            let changed = transaction.prepare_cached(
                "UPDATE steps SET status = 'running', attempts = ?3, started_at = COALESCE(started_at, ?4),
                 process_group = NULL, process_started = NULL
                 WHERE run_id = ?1 AND name = ?2",
            )?
            .execute(params![run, step, attempt, now])?;
            if changed == 0 {
                return Err(StoreError::StepNotFound { run, step: step.to_owned() }.into());
            }
            append_event(
                transaction,
                now,
                "step.started",
                &format!("run/{run}/step/{step}"),
                &actor,
                &json!({ "attempt": attempt }),
            )?;
            Ok(())
        })
    }

    fn record_step_process(
        &self,
        run: RunId,
        step: &str,
        process: StepProcess,
    ) -> Result<(), StoreError> {
        let started = i64::try_from(process.started).unwrap_or(i64::MAX);
        self.write(|transaction| {
            let changed = transaction
                .prepare_cached(
                    "UPDATE steps SET process_group = ?3, process_started = ?4
                     WHERE run_id = ?1 AND name = ?2",
                )?
                .execute(params![run, step, process.group, started])?;
            if changed == 0 {
                return Err(StoreError::StepNotFound {
                    run,
                    step: step.to_owned(),
                }
                .into());
            }
            Ok(())
        })
    }

    fn finish_step(&self, run: RunId, step: &str, outcome: &StepOutcome) -> Result<(), StoreError> {
        if matches!(outcome.status, StepStatus::Pending | StepStatus::Running) {
            return Err(StoreError::NotFinal {
                call: "finish_step",
                status: status_text::step_status(outcome.status).to_owned(),
            });
        }
        let now = now_millis();
        let status = status_text::step_status(outcome.status);
        self.write(|transaction| {
            let actor = SqliteStore::run_actor(transaction, run)?;
            let changed = transaction.prepare_cached(
                "UPDATE steps SET status = ?3, attempts = ?4, exit_code = ?5, cache_key = ?6, finished_at = ?7
                 WHERE run_id = ?1 AND name = ?2",
            )?
            .execute(params![run, step, status, outcome.attempts, outcome.exit_code, outcome.cache_key, now])?;
            if changed == 0 {
                return Err(StoreError::StepNotFound { run, step: step.to_owned() }.into());
            }
            append_event(
                transaction,
                now,
                "step.finished",
                &format!("run/{run}/step/{step}"),
                &actor,
                &json!({
                    "status": status,
                    "attempts": outcome.attempts,
                    "exit_code": outcome.exit_code,
                    "cache_key": outcome.cache_key,
                }),
            )?;
            Ok(())
        })
    }

    fn append_logs(&self, run: RunId, step: &str, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write(|transaction| {
            let exists: Option<i64> = transaction
                .prepare_cached("SELECT 1 FROM steps WHERE run_id = ?1 AND name = ?2")?
                .query_row(params![run, step], |row| row.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::StepNotFound {
                    run,
                    step: step.to_owned(),
                }
                .into());
            }
            let last_seq: i64 = transaction
                .prepare_cached(
                    "SELECT COALESCE(MAX(seq), 0) FROM logs WHERE run_id = ?1 AND step = ?2",
                )?
                .query_row(params![run, step], |row| row.get(0))?;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO logs (run_id, step, seq, at, attempt, stream, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (offset, line) in (1..).zip(lines) {
                insert.execute(params![
                    run,
                    step,
                    last_seq + offset,
                    line.at,
                    line.attempt,
                    status_text::log_stream(line.stream),
                    line.text,
                ])?;
            }
            Ok(())
        })
    }

    fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        artifact_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        if status == RunStatus::Running {
            return Err(StoreError::NotFinal {
                call: "finish_run",
                status: "running".to_owned(),
            });
        }
        let now = now_millis();
        let status_word = status.as_str();
        let running_steps_become = match status {
            RunStatus::Cancelled => StepStatus::Cancelled,
            RunStatus::Interrupted => StepStatus::Interrupted,
            _ => StepStatus::Failed,
        };
        self.write(|transaction| {
            let actor = SqliteStore::run_actor(transaction, run)?;
            transaction.execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, artifact_id = ?4, reason = ?5 WHERE id = ?1",
                params![run, status_word, now, artifact_id, reason],
            )?;
            let steps_skipped = transaction.execute(
                "UPDATE steps SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
                params![run],
            )?;
            let steps_stopped = transaction.execute(
                "UPDATE steps SET status = ?2, finished_at = ?3 WHERE run_id = ?1 AND status = 'running'",
                params![run, status_text::step_status(running_steps_become), now],
            )?;
            append_event(
                transaction,
                now,
                "run.finished",
                &format!("run/{run}"),
                &actor,
                &json!({
                    "status": status_word,
                    "artifact_id": artifact_id,
                    "reason": reason,
                    "steps_skipped": steps_skipped,
                    "steps_stopped": steps_stopped,
                }),
            )?;
            Ok(())
        })?;
        if let Some(lock) = self.run_locks().remove(&run) {
            // Removed before unlocking, for the same reason as in `open`.
            let _ = fs::remove_file(run_lock::lock_path(&self.locks_dir, run));
            drop(lock);
        }
        Ok(())
    }

    fn record_artifact(&self, artifact: &ArtifactRecord) -> Result<(), StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO artifacts (id, size, files, app, run_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    artifact.id,
                    to_i64(artifact.size),
                    to_i64(artifact.files),
                    artifact.app,
                    artifact.run_id,
                    artifact.created_at
                ],
            )?;
            // Idempotent: an artifact already known is no new event.
            if inserted == 0 {
                return Ok(());
            }
            let actor = match artifact.run_id {
                Some(run) => SqliteStore::run_actor(transaction, run)?,
                None => SYSTEM_ACTOR.to_owned(),
            };
            append_event(
                transaction,
                now,
                "artifact.stored",
                &format!("artifact/{}", artifact.id),
                &actor,
                &json!({
                    "size": artifact.size,
                    "files": artifact.files,
                    "app": artifact.app,
                    "run_id": artifact.run_id,
                }),
            )?;
            Ok(())
        })
    }

    fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached("SELECT key, step, run_id, outputs_blob FROM cache WHERE key = ?1")?
                .query_row([key], |row| {
                    Ok(CacheEntry {
                        key: row.get(0)?,
                        step: row.get(1)?,
                        run_id: row.get(2)?,
                        outputs_blob: row.get(3)?,
                    })
                })
                .optional()
        })
    }

    fn cache_put(&self, entry: &CacheEntry) -> Result<(), StoreError> {
        let now = now_millis();
        self.write(|transaction| {
            let actor = SqliteStore::run_actor(transaction, entry.run_id)?;
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO cache (key, step, run_id, outputs_blob, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    entry.key,
                    entry.step,
                    entry.run_id,
                    entry.outputs_blob,
                    now
                ])?;
            append_event(
                transaction,
                now,
                "cache.stored",
                &format!("cache/{}", entry.key),
                &actor,
                &json!({
                    "step": entry.step,
                    "run_id": entry.run_id,
                    "outputs_blob": entry.outputs_blob,
                }),
            )?;
            Ok(())
        })
    }

    fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!("{RUN_COLUMNS} ORDER BY id DESC LIMIT ?1"))?
                .query_map([clamp(limit)], run_from_row)?
                .collect()
        })
    }

    fn get_run(&self, run: RunId) -> Result<Option<Run>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(&format!("{RUN_COLUMNS} WHERE id = ?1"))?
                .query_row([run], run_from_row)
                .optional()
        })
    }

    fn list_steps(&self, run: RunId) -> Result<Vec<StepRecord>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT run_id, name, status, attempts, exit_code, started_at, finished_at, cache_key
                     FROM steps WHERE run_id = ?1 ORDER BY position",
                )?
                .query_map([run], |row| {
                    Ok(StepRecord {
                        run_id: row.get(0)?,
                        name: row.get(1)?,
                        status: parse_column(row, 2, status_text::parse_step_status)?,
                        attempts: row.get(3)?,
                        exit_code: row.get(4)?,
                        started_at: row.get(5)?,
                        finished_at: row.get(6)?,
                        cache_key: row.get(7)?,
                    })
                })?
                .collect()
        })
    }

    fn read_logs(
        &self,
        run: RunId,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError> {
        let line_from_row = |row: &Row<'_>| {
            Ok((
                row.get(0)?,
                LogLine {
                    at: row.get(1)?,
                    attempt: row.get(2)?,
                    stream: parse_column(row, 3, status_text::parse_log_stream)?,
                    text: row.get(4)?,
                },
            ))
        };
        self.read(|connection| match step {
            // Across steps, insertion order keeps parallel steps interleaved as they ran.
            None => connection
                .prepare_cached(
                    "SELECT step, at, attempt, stream, text FROM logs WHERE run_id = ?1 ORDER BY rowid",
                )?
                .query_map([run], line_from_row)?
                .collect(),
            Some(step) => connection
                .prepare_cached(
                    "SELECT step, at, attempt, stream, text FROM logs
                     WHERE run_id = ?1 AND step = ?2 ORDER BY seq",
                )?
                .query_map(params![run, step], line_from_row)?
                .collect(),
        })
    }

    fn list_artifacts(&self, limit: usize) -> Result<Vec<ArtifactRecord>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT id, size, files, app, run_id, created_at FROM artifacts
                     ORDER BY created_at DESC, rowid DESC LIMIT ?1",
                )?
                .query_map([clamp(limit)], |row| {
                    Ok(ArtifactRecord {
                        id: row.get(0)?,
                        size: from_i64(row.get(1)?),
                        files: from_i64(row.get(2)?),
                        app: row.get(3)?,
                        run_id: row.get(4)?,
                        created_at: row.get(5)?,
                    })
                })?
                .collect()
        })
    }

    fn list_events(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT id, at, kind, subject, actor, data FROM events
                     WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?
                .query_map(params![after, clamp(limit)], event_from_row)?
                .collect()
        })
    }

    fn list_events_about(
        &self,
        subject: &str,
        kind: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        self.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT id, at, kind, subject, actor, data FROM events
                     WHERE subject = ?1 AND (?2 IS NULL OR kind = ?2) AND id > ?3
                     ORDER BY id LIMIT ?4",
                )?
                .query_map(params![subject, kind, after, clamp(limit)], event_from_row)?
                .collect()
        })
    }
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: row.get(0)?,
        at: row.get(1)?,
        kind: row.get(2)?,
        subject: row.get(3)?,
        actor: row.get(4)?,
        data: parse_column(row, 5, |text| serde_json::from_str(text).ok())?,
    })
}

const RUN_COLUMNS: &str = "SELECT id, app, spec_dir, git_commit, status, started_at, finished_at, artifact_id, reason FROM runs";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: row.get(0)?,
        app: row.get(1)?,
        spec_dir: row.get(2)?,
        commit: row.get(3)?,
        status: parse_column(row, 4, status_text::parse_run_status)?,
        started_at: row.get(5)?,
        finished_at: row.get(6)?,
        artifact_id: row.get(7)?,
        reason: row.get(8)?,
    })
}

/// Appends one event; the caller's transaction makes it atomic with the rows.
fn append_event(
    transaction: &Transaction<'_>,
    at: UnixMillis,
    kind: &str,
    subject: &str,
    actor: &str,
    data: &serde_json::Value,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO events (at, kind, subject, actor, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![at, kind, subject, actor, data.to_string()])?;
    Ok(())
}

/// Reads a text column through `parse`; a value it rejects is a conversion error.
fn parse_column<T>(
    row: &Row<'_>,
    index: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!(
                "an unknown value `{text}` in column {}",
                row.as_ref().column_name(index).unwrap_or("?")
            )
            .into(),
        )
    })
}

/// Maps SQLite errors to store errors that name the database file.
fn sql_error(database_path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |error| {
        let path = database_path.to_path_buf();
        match error {
            rusqlite::Error::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Locked { path }
            }
            rusqlite::Error::FromSqlConversionFailure(_, _, what) => StoreError::Corrupt {
                path,
                what: what.to_string(),
            },
            source => StoreError::Sqlite { path, source },
        }
    }
}

fn clamp(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// SQLite integers are signed; counts and sizes never reach 2^63.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The current time as the store records it.
pub fn now_millis() -> UnixMillis {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
