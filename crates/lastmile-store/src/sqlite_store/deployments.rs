//! Releases, environments and deployments in SQLite: the durable side of
//! the deployment engine's state machine.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde_json::json;

use super::{SYSTEM_ACTOR, SqliteStore, WriteError, append_event, now_millis, parse_column};
use crate::StoreError;
use crate::model::{
    DeploymentKind, DeploymentRecord, DeploymentStatus, DeploymentStep, EnvironmentState, Phase,
    ReleaseRecord, RunId,
};

const RELEASE_COLUMNS: &str =
    "SELECT id, app, seq, artifact_id, run_id, spec_source, created_at FROM releases";
const DEPLOYMENT_COLUMNS: &str = "SELECT id, environment, from_release, to_release, strategy, status, phase, started_at, finished_at, reason, analysis FROM deployments";

/// The content address of a release.
pub(super) fn release_id(artifact_id: &str, spec_source: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"lastmile release v1\0");
    hasher.update(artifact_id.as_bytes());
    hasher.update(b"\0");
    hasher.update(spec_source.as_bytes());
    hasher.finalize().to_hex().to_string()
}

pub(super) fn create_release(
    store: &SqliteStore,
    app: &str,
    artifact_id: &str,
    run_id: Option<RunId>,
    spec_source: &str,
) -> Result<ReleaseRecord, StoreError> {
    let id = release_id(artifact_id, spec_source);
    let now = now_millis();
    store.write(|transaction| {
        if let Some(existing) = get_release_in(transaction, &id)? {
            return Ok(existing);
        }
        let seq: i64 = transaction.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM releases",
            [],
            |row| row.get(0),
        )?;
        transaction.execute(
            "INSERT INTO releases (id, app, seq, artifact_id, run_id, spec_source, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id, app, seq, artifact_id, run_id, spec_source, now],
        )?;
        append_event(
            transaction,
            now,
            "release.created",
            &format!("release/{id}"),
            SYSTEM_ACTOR,
            &json!({ "version": format!("v{seq}"), "artifact": artifact_id, "run": run_id }),
        )?;
        Ok(get_release_in(transaction, &id)?.expect("inserted in this transaction"))
    })
}

fn get_release_in(
    transaction: &Transaction<'_>,
    id: &str,
) -> rusqlite::Result<Option<ReleaseRecord>> {
    transaction
        .prepare_cached(&format!("{RELEASE_COLUMNS} WHERE id = ?1"))?
        .query_row([id], release_from_row)
        .optional()
}

pub(super) fn list_releases(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<ReleaseRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{RELEASE_COLUMNS} ORDER BY seq DESC LIMIT ?1"))?
            .query_map([super::clamp(limit)], release_from_row)?
            .collect()
    })
}

pub(super) fn get_release(
    store: &SqliteStore,
    id: &str,
) -> Result<Option<ReleaseRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{RELEASE_COLUMNS} WHERE id = ?1"))?
            .query_row([id], release_from_row)
            .optional()
    })
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<ReleaseRecord> {
    let seq: i64 = row.get(2)?;
    Ok(ReleaseRecord {
        id: row.get(0)?,
        app: row.get(1)?,
        version: format!("v{seq}"),
        artifact_id: row.get(3)?,
        run_id: row.get(4)?,
        spec_source: row.get(5)?,
        created_at: row.get(6)?,
    })
}

pub(super) fn get_environment(
    store: &SqliteStore,
    name: &str,
) -> Result<Option<EnvironmentState>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(
                "SELECT name, current_release, previous_release, weights, warm_until
                 FROM environments WHERE name = ?1",
            )?
            .query_row([name], |row| {
                Ok(EnvironmentState {
                    name: row.get(0)?,
                    current_release: row.get(1)?,
                    previous_release: row.get(2)?,
                    weights: parse_column(row, 3, |text| serde_json::from_str(text).ok())?,
                    warm_until: row.get(4)?,
                })
            })
            .optional()
    })
}

fn put_environment_in(
    transaction: &Transaction<'_>,
    environment: &EnvironmentState,
    now: i64,
) -> rusqlite::Result<()> {
    let weights = serde_json::to_string(&environment.weights).expect("weights serialize");
    transaction
        .prepare_cached(
            "INSERT INTO environments (name, current_release, previous_release, weights, warm_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET current_release = ?2, previous_release = ?3,
                 weights = ?4, warm_until = ?5, updated_at = ?6",
        )?
        .execute(params![
            environment.name,
            environment.current_release,
            environment.previous_release,
            weights,
            environment.warm_until,
            now
        ])?;
    Ok(())
}

pub(super) fn put_environment(
    store: &SqliteStore,
    environment: &EnvironmentState,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        put_environment_in(transaction, environment, now)?;
        append_event(
            transaction,
            now,
            "environment.changed",
            &format!("environment/{}", environment.name),
            SYSTEM_ACTOR,
            &json!(environment),
        )?;
        Ok(())
    })
}

pub(super) fn begin_deployment(
    store: &SqliteStore,
    environment: &str,
    from_release: Option<&str>,
    to_release: &str,
    strategy: DeploymentKind,
    actor: &str,
) -> Result<DeploymentRecord, StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        if let Some(running) = running_in(transaction, environment)? {
            return Err(WriteError::Store(StoreError::DeploymentRunning {
                environment: environment.to_string(),
                deployment: running.id,
            }));
        }
        transaction.execute(
            "INSERT INTO deployments (environment, from_release, to_release, strategy, status, phase, started_at, actor)
             VALUES (?1, ?2, ?3, ?4, 'running', 'started', ?5, ?6)",
            params![environment, from_release, to_release, strategy.as_str(), now, actor],
        )?;
        let id = transaction.last_insert_rowid();
        insert_step(transaction, id, &Phase::Started, &json!({}), now)?;
        append_event(
            transaction,
            now,
            "deployment.started",
            &format!("deployment/{id}"),
            actor,
            &json!({
                "environment": environment,
                "from": from_release,
                "to": to_release,
                "strategy": strategy,
            }),
        )?;
        Ok(get_in(transaction, id)?.expect("inserted in this transaction"))
    })
}

fn insert_step(
    transaction: &Transaction<'_>,
    deployment: i64,
    phase: &Phase,
    detail: &serde_json::Value,
    now: i64,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO deployment_steps (deployment_id, seq, at, phase, detail)
             SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM deployment_steps WHERE deployment_id = ?1",
        )?
        .execute(params![deployment, now, phase.to_string(), detail.to_string()])?;
    Ok(())
}

pub(super) fn advance_deployment(
    store: &SqliteStore,
    deployment: i64,
    phase: &Phase,
    detail: &serde_json::Value,
    environment: Option<&EnvironmentState>,
) -> Result<(), StoreError> {
    let now = now_millis();
    store.write(|transaction| {
        let changed = transaction
            .prepare_cached(
                "UPDATE deployments SET phase = ?2 WHERE id = ?1 AND status = 'running'",
            )?
            .execute(params![deployment, phase.to_string()])?;
        if changed == 0 {
            return Err(WriteError::Store(StoreError::DeploymentNotFound {
                deployment,
            }));
        }
        insert_step(transaction, deployment, phase, detail, now)?;
        if let Some(environment) = environment {
            put_environment_in(transaction, environment, now)?;
        }
        Ok(())
    })
}

pub(super) fn finish_deployment(
    store: &SqliteStore,
    deployment: i64,
    status: DeploymentStatus,
    reason: Option<&str>,
    analysis: Option<&serde_json::Value>,
    environment: Option<&EnvironmentState>,
) -> Result<(), StoreError> {
    let Some(phase) = Phase::ended(status) else {
        return Err(StoreError::NotFinal {
            call: "finish_deployment",
            status: status.as_str().to_string(),
        });
    };
    let now = now_millis();
    let analysis_text = analysis.map(serde_json::Value::to_string);
    store.write(|transaction| {
        let (actor, name): (String, String) = transaction
            .prepare_cached("SELECT actor, environment FROM deployments WHERE id = ?1")?
            .query_row([deployment], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .ok_or(WriteError::Store(StoreError::DeploymentNotFound { deployment }))?;
        transaction
            .prepare_cached(
                "UPDATE deployments SET status = ?2, phase = ?3, finished_at = ?4, reason = ?5, analysis = ?6 WHERE id = ?1",
            )?
            .execute(params![deployment, status.as_str(), phase.to_string(), now, reason, analysis_text])?;
        insert_step(
            transaction,
            deployment,
            &phase,
            &json!({ "reason": reason }),
            now,
        )?;
        if let Some(environment) = environment {
            put_environment_in(transaction, environment, now)?;
        }
        append_event(
            transaction,
            now,
            "deployment.finished",
            &format!("deployment/{deployment}"),
            &actor,
            &json!({
                "environment": name,
                "status": status.as_str(),
                "reason": reason,
                "analysis": analysis,
            }),
        )?;
        Ok(())
    })
}

fn running_in(
    transaction: &Transaction<'_>,
    environment: &str,
) -> rusqlite::Result<Option<DeploymentRecord>> {
    transaction
        .prepare_cached(&format!(
            "{DEPLOYMENT_COLUMNS} WHERE environment = ?1 AND status = 'running'"
        ))?
        .query_row([environment], deployment_from_row)
        .optional()
}

fn get_in(transaction: &Transaction<'_>, id: i64) -> rusqlite::Result<Option<DeploymentRecord>> {
    transaction
        .prepare_cached(&format!("{DEPLOYMENT_COLUMNS} WHERE id = ?1"))?
        .query_row([id], deployment_from_row)
        .optional()
}

pub(super) fn running_deployment(
    store: &SqliteStore,
    environment: &str,
) -> Result<Option<DeploymentRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!(
                "{DEPLOYMENT_COLUMNS} WHERE environment = ?1 AND status = 'running'"
            ))?
            .query_row([environment], deployment_from_row)
            .optional()
    })
}

pub(super) fn last_deployment(
    store: &SqliteStore,
    environment: &str,
) -> Result<Option<DeploymentRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!(
                "{DEPLOYMENT_COLUMNS} WHERE environment = ?1 ORDER BY id DESC LIMIT 1"
            ))?
            .query_row([environment], deployment_from_row)
            .optional()
    })
}

pub(super) fn get_deployment(
    store: &SqliteStore,
    id: i64,
) -> Result<Option<DeploymentRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{DEPLOYMENT_COLUMNS} WHERE id = ?1"))?
            .query_row([id], deployment_from_row)
            .optional()
    })
}

pub(super) fn list_deployments(
    store: &SqliteStore,
    limit: usize,
) -> Result<Vec<DeploymentRecord>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(&format!("{DEPLOYMENT_COLUMNS} ORDER BY id DESC LIMIT ?1"))?
            .query_map([super::clamp(limit)], deployment_from_row)?
            .collect()
    })
}

pub(super) fn deployment_steps(
    store: &SqliteStore,
    deployment: i64,
) -> Result<Vec<DeploymentStep>, StoreError> {
    store.read(|connection| {
        connection
            .prepare_cached(
                "SELECT seq, at, phase, detail FROM deployment_steps WHERE deployment_id = ?1 ORDER BY seq",
            )?
            .query_map([deployment], |row| {
                Ok(DeploymentStep {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    phase: Phase::from(row.get::<_, String>(2)?.as_str()),
                    detail: parse_column(row, 3, |text| serde_json::from_str(text).ok())?,
                })
            })?
            .collect()
    })
}

fn deployment_from_row(row: &Row<'_>) -> rusqlite::Result<DeploymentRecord> {
    Ok(DeploymentRecord {
        id: row.get(0)?,
        environment: row.get(1)?,
        from_release: row.get(2)?,
        to_release: row.get(3)?,
        strategy: parse_column(row, 4, |text| text.parse().ok())?,
        status: parse_column(row, 5, DeploymentStatus::parse)?,
        phase: Phase::from(row.get::<_, String>(6)?.as_str()),
        started_at: row.get(7)?,
        finished_at: row.get(8)?,
        reason: row.get(9)?,
        // The column's CHECK keeps it valid JSON.
        analysis: row
            .get::<_, Option<String>>(10)?
            .and_then(|text| serde_json::from_str(&text).ok()),
    })
}
