//! Migrating a store written by an older build keeps what it knew.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use rusqlite::{Connection, params};

use super::{MIGRATIONS, Migrated, SCHEMA_VERSION, migrate, user_version};

/// Version 4 had `deployments.error`, which said only this for every failure.
const GENERIC: &str = "failed; traffic restored to the previous release";

/// A database as the last build before `reason` left it.
fn version_4() -> Connection {
    let connection = Connection::open_in_memory().unwrap();
    for script in &MIGRATIONS[..4] {
        connection.execute_batch(script).unwrap();
    }
    connection.pragma_update(None, "user_version", 4).unwrap();
    connection
        .execute_batch(
            "INSERT INTO releases (id, app, seq, artifact_id, spec_source, created_at)
             VALUES ('r1', 'hello', 1, 'a1', 's', 0), ('r2', 'hello', 2, 'a2', 's', 0);",
        )
        .unwrap();
    connection
}

fn deployment(connection: &Connection, id: i64, status: &str, error: Option<&str>) {
    connection
        .execute(
            "INSERT INTO deployments (id, environment, from_release, to_release, strategy, status, phase, started_at, finished_at, error, actor)
             VALUES (?1, 'production', 'r1', 'r2', 'canary', ?2, ?2, 0, 1, ?3, 'test')",
            params![id, status, error],
        )
        .unwrap();
}

fn step(connection: &Connection, deployment: i64, seq: i64, phase: &str, detail: &str) {
    connection
        .execute(
            "INSERT INTO deployment_steps (deployment_id, seq, at, phase, detail) VALUES (?1, ?2, 0, ?3, ?4)",
            params![deployment, seq, phase, detail],
        )
        .unwrap();
}

fn decision(connection: &Connection, deployment: i64, data: &str) {
    connection
        .execute(
            "INSERT INTO events (at, kind, subject, actor, data) VALUES (0, 'canary.decision', ?1, 'lastmile', ?2)",
            params![format!("deployment/{deployment}"), data],
        )
        .unwrap();
}

fn reason_and_analysis(connection: &Connection, id: i64) -> (Option<String>, Option<String>) {
    connection
        .query_row(
            "SELECT reason, analysis FROM deployments WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
}

#[test]
fn failed_deployments_of_older_stores_get_back_the_reason_and_numbers_they_had() {
    let mut connection = version_4();
    // 1: an aborted canary, with two decisions; the last one counts.
    deployment(&connection, 1, "failed", Some(GENERIC));
    step(&connection, 1, 1, "step-1", r#"{"canary_percent": 10}"#);
    step(
        &connection,
        1,
        2,
        "aborting",
        r#"{"reason": "error rate 50.00% (9 of 18)"}"#,
    );
    step(&connection, 1, 3, "failed", r#"{"error": "x"}"#);
    decision(
        &connection,
        1,
        r#"{"decision": "hold", "analysis": {"canary": {"requests": 4}}}"#,
    );
    decision(
        &connection,
        1,
        r#"{"decision": "abort", "analysis": {"canary": {"requests": 18}}}"#,
    );
    // 2: a failure without an abort: its text is all there is.
    deployment(&connection, 2, "failed", Some(GENERIC));
    // 3: an interrupted deployment had its own words already.
    deployment(
        &connection,
        3,
        "failed",
        Some("interrupted: lastmile stopped mid-deployment"),
    );
    step(
        &connection,
        3,
        1,
        "aborting",
        r#"{"reason": "not this one"}"#,
    );
    // 4: a promoted canary keeps no reason but does get its numbers.
    deployment(&connection, 4, "succeeded", None);
    decision(
        &connection,
        4,
        r#"{"decision": "promote", "analysis": {"canary": {"requests": 300}}}"#,
    );
    // 5: still running: left alone.
    connection
        .execute(
            "INSERT INTO deployments (id, environment, from_release, to_release, strategy, status, phase, started_at, actor)
             VALUES (5, 'staging', 'r1', 'r2', 'canary', 'running', 'step-1', 0, 'test')",
            [],
        )
        .unwrap();
    decision(
        &connection,
        5,
        r#"{"decision": "hold", "analysis": {"canary": {"requests": 1}}}"#,
    );

    assert!(matches!(
        migrate(&mut connection).unwrap(),
        Migrated::UpToDate
    ));
    assert_eq!(user_version(&connection).unwrap(), SCHEMA_VERSION);

    assert_eq!(
        reason_and_analysis(&connection, 1),
        (
            Some("canary aborted: error rate 50.00% (9 of 18)".to_owned()),
            Some(r#"{"canary":{"requests":18}}"#.to_owned())
        )
    );
    assert_eq!(
        reason_and_analysis(&connection, 2),
        (Some(GENERIC.to_owned()), None)
    );
    assert_eq!(
        reason_and_analysis(&connection, 3).0.as_deref(),
        Some("interrupted: lastmile stopped mid-deployment")
    );
    assert_eq!(
        reason_and_analysis(&connection, 4),
        (None, Some(r#"{"canary":{"requests":300}}"#.to_owned()))
    );
    assert_eq!(reason_and_analysis(&connection, 5), (None, None));
}

#[test]
fn the_analysis_column_holds_only_json() {
    let mut connection = version_4();
    migrate(&mut connection).unwrap();
    deployment_v5(&connection, Some("{\"ok\": true}")).unwrap();
    assert!(deployment_v5(&connection, Some("not json")).is_err());
}

fn deployment_v5(connection: &Connection, analysis: Option<&str>) -> rusqlite::Result<usize> {
    connection.execute(
        "INSERT INTO deployments (environment, to_release, strategy, status, phase, started_at, actor, analysis)
         VALUES ('production', 'r2', 'canary', 'failed', 'failed', 0, 'test', ?1)",
        [analysis],
    )
}
