//! `SqliteStore` on real SQLite files: every trait method, events, migrations.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;
use std::sync::Arc;

use lastmile_store::{
    ArtifactRecord, CacheEntry, LogLine, LogStream, NewRun, RunStatus, SqliteStore, StepOutcome,
    StepStatus, Store, StoreError,
};

fn open(state_dir: &Path) -> SqliteStore {
    let (store, report) = SqliteStore::open(state_dir).unwrap();
    assert!(report.interrupted_runs.is_empty(), "{report:?}");
    store
}

fn new_run(steps: &[&str]) -> NewRun {
    NewRun {
        app: "hello".into(),
        spec_dir: "/srv/hello".into(),
        commit: Some("0123abcd".into()),
        steps: steps.iter().map(|step| step.to_string()).collect(),
        actor: "local:alice".into(),
    }
}

fn event_count(store: &SqliteStore) -> usize {
    store.list_events(0, usize::MAX).unwrap().len()
}

fn line(attempt: u32, stream: LogStream, text: &str) -> LogLine {
    LogLine {
        at: 1_700_000_000_000,
        attempt,
        stream,
        text: text.into(),
    }
}

fn outcome(status: StepStatus) -> StepOutcome {
    StepOutcome {
        status,
        attempts: 1,
        exit_code: Some(0),
        cache_key: None,
    }
}

fn raw_connection(state_dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(state_dir.join("lastmile.db")).unwrap()
}

#[test]
fn a_run_round_trips_with_one_event_per_change() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    assert_eq!(event_count(&store), 0);

    let run = store
        .create_run(&new_run(&["build", "test", "lint"]))
        .unwrap();
    assert_eq!(event_count(&store), 1);
    let created = store.get_run(run).unwrap().unwrap();
    assert_eq!(created.status, RunStatus::Running);
    assert_eq!(created.app, "hello");
    assert_eq!(created.spec_dir, "/srv/hello");
    assert_eq!(created.commit.as_deref(), Some("0123abcd"));
    assert_eq!(created.finished_at, None);
    assert!(created.started_at > 1_600_000_000_000);
    let names: Vec<_> = store
        .list_steps(run)
        .unwrap()
        .into_iter()
        .map(|step| step.name)
        .collect();
    assert_eq!(names, ["build", "test", "lint"]);
    assert!(
        store
            .list_steps(run)
            .unwrap()
            .iter()
            .all(|step| step.status == StepStatus::Pending)
    );

    store.start_step(run, "build", 1).unwrap();
    assert_eq!(event_count(&store), 2);
    let build = &store.list_steps(run).unwrap()[0];
    assert_eq!((build.status, build.attempts), (StepStatus::Running, 1));
    let first_start = build.started_at.unwrap();

    store.start_step(run, "build", 2).unwrap();
    let build = &store.list_steps(run).unwrap()[0];
    assert_eq!(build.attempts, 2);
    assert_eq!(
        build.started_at,
        Some(first_start),
        "started_at is the first attempt's"
    );

    let key = "k".repeat(64);
    store
        .finish_step(
            run,
            "build",
            &StepOutcome {
                status: StepStatus::Succeeded,
                attempts: 2,
                exit_code: Some(0),
                cache_key: Some(key.clone()),
            },
        )
        .unwrap();
    assert_eq!(event_count(&store), 4);
    let build = &store.list_steps(run).unwrap()[0];
    assert_eq!(build.status, StepStatus::Succeeded);
    assert_eq!(build.exit_code, Some(0));
    assert_eq!(build.cache_key.as_deref(), Some(key.as_str()));
    assert!(build.finished_at.is_some());

    store.start_step(run, "test", 1).unwrap();
    store
        .finish_run(
            run,
            RunStatus::Failed,
            Some(&"a".repeat(64)),
            Some("step `test` failed"),
        )
        .unwrap();
    assert_eq!(event_count(&store), 6);
    let finished = store.get_run(run).unwrap().unwrap();
    assert_eq!(finished.status, RunStatus::Failed);
    assert_eq!(finished.reason.as_deref(), Some("step `test` failed"));
    assert_eq!(finished.artifact_id, Some("a".repeat(64)));
    assert!(finished.finished_at.unwrap() >= finished.started_at);
    let statuses: Vec<_> = store
        .list_steps(run)
        .unwrap()
        .into_iter()
        .map(|step| step.status)
        .collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Succeeded,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );

    let kinds: Vec<_> = store
        .list_events(0, 100)
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "run.started",
            "step.started",
            "step.started",
            "step.finished",
            "step.started",
            "run.finished"
        ]
    );
    let events = store.list_events(0, 100).unwrap();
    assert!(events.iter().all(|event| event.actor == "local:alice"));
    assert_eq!(events[0].subject, format!("run/{run}"));
    assert_eq!(events[1].subject, format!("run/{run}/step/build"));
    assert_eq!(events[5].data["status"], "failed");
    assert_eq!(events[5].data["steps_skipped"], 1);
}

#[test]
fn cancelling_a_run_cancels_running_steps_and_skips_pending_ones() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let run = store.create_run(&new_run(&["a", "b", "c"])).unwrap();
    store.start_step(run, "a", 1).unwrap();
    store
        .finish_step(run, "a", &outcome(StepStatus::Cached))
        .unwrap();
    store.start_step(run, "b", 1).unwrap();
    store
        .finish_run(
            run,
            RunStatus::Cancelled,
            None,
            Some("cancelled by the user"),
        )
        .unwrap();
    let statuses: Vec<_> = store
        .list_steps(run)
        .unwrap()
        .into_iter()
        .map(|step| step.status)
        .collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Cached,
            StepStatus::Cancelled,
            StepStatus::Skipped
        ]
    );
    assert_eq!(
        store.get_run(run).unwrap().unwrap().status,
        RunStatus::Cancelled
    );
}

#[test]
fn finishing_a_run_releases_its_lock_file() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let run = store.create_run(&new_run(&["a"])).unwrap();
    let lock = state.path().join("locks").join(format!("run-{run}.lock"));
    assert!(lock.exists());
    store
        .finish_run(run, RunStatus::Succeeded, None, None)
        .unwrap();
    assert!(!lock.exists());
}

#[test]
fn failed_calls_change_nothing_and_write_no_event() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let run = store.create_run(&new_run(&["build"])).unwrap();
    let before = event_count(&store);

    let error = store.start_step(run, "deploy", 1).unwrap_err();
    assert!(matches!(error, StoreError::StepNotFound { .. }), "{error}");
    assert!(error.to_string().contains("deploy"), "{error}");
    assert!(matches!(
        store.start_step(999, "build", 1),
        Err(StoreError::RunNotFound { run: 999 })
    ));
    assert!(matches!(
        store.finish_step(run, "build", &outcome(StepStatus::Running)),
        Err(StoreError::NotFinal { .. })
    ));
    assert!(matches!(
        store.finish_step(run, "nope", &outcome(StepStatus::Failed)),
        Err(StoreError::StepNotFound { .. })
    ));
    assert!(matches!(
        store.finish_run(run, RunStatus::Running, None, None),
        Err(StoreError::NotFinal { .. })
    ));
    assert!(matches!(
        store.finish_run(404, RunStatus::Failed, None, None),
        Err(StoreError::RunNotFound { .. })
    ));
    assert!(matches!(
        store.append_logs(run, "nope", &[line(1, LogStream::Stdout, "x")]),
        Err(StoreError::StepNotFound { .. })
    ));

    assert_eq!(event_count(&store), before);
    assert_eq!(
        store.list_steps(run).unwrap()[0].status,
        StepStatus::Pending
    );
    assert!(store.read_logs(run, None).unwrap().is_empty());
}

#[test]
fn logs_come_back_in_order_per_step_and_interleaved_per_run() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let run = store.create_run(&new_run(&["web", "worker"])).unwrap();
    let other = store.create_run(&new_run(&["web"])).unwrap();
    store
        .append_logs(
            run,
            "web",
            &[
                line(1, LogStream::Stdout, "web 1"),
                line(1, LogStream::Stderr, "web 2"),
            ],
        )
        .unwrap();
    store
        .append_logs(run, "worker", &[line(1, LogStream::Stdout, "worker 1")])
        .unwrap();
    store
        .append_logs(
            run,
            "web",
            &[
                line(2, LogStream::System, "retrying"),
                line(2, LogStream::Stdout, "web 3"),
            ],
        )
        .unwrap();
    store
        .append_logs(other, "web", &[line(1, LogStream::Stdout, "other run")])
        .unwrap();
    store.append_logs(run, "web", &[]).unwrap();

    let web = store.read_logs(run, Some("web")).unwrap();
    let texts: Vec<_> = web.iter().map(|(_, line)| line.text.as_str()).collect();
    assert_eq!(texts, ["web 1", "web 2", "retrying", "web 3"]);
    assert!(web.iter().all(|(step, _)| step == "web"));
    assert_eq!(web[2].1, line(2, LogStream::System, "retrying"));
    assert_eq!(web[1].1.stream, LogStream::Stderr);

    let all: Vec<_> = store
        .read_logs(run, None)
        .unwrap()
        .into_iter()
        .map(|(step, line)| format!("{step}: {}", line.text))
        .collect();
    assert_eq!(
        all,
        [
            "web: web 1",
            "web: web 2",
            "worker: worker 1",
            "web: retrying",
            "web: web 3"
        ]
    );
}

#[test]
fn artifacts_are_recorded_once_and_listed_newest_first() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let run = store.create_run(&new_run(&["build"])).unwrap();
    let artifact = |id: char, created_at| ArtifactRecord {
        id: id.to_string().repeat(64),
        size: 5_000_000_000,
        files: 12,
        app: "hello".into(),
        run_id: Some(run),
        created_at,
    };
    let before = event_count(&store);
    store.record_artifact(&artifact('a', 1_000)).unwrap();
    assert_eq!(event_count(&store), before + 1);
    store.record_artifact(&artifact('a', 1_000)).unwrap();
    assert_eq!(
        event_count(&store),
        before + 1,
        "recording again is a no-op"
    );
    store.record_artifact(&artifact('b', 2_000)).unwrap();
    store
        .record_artifact(&ArtifactRecord {
            run_id: None,
            ..artifact('c', 500)
        })
        .unwrap();

    let listed = store.list_artifacts(10).unwrap();
    assert_eq!(
        listed,
        [
            artifact('b', 2_000),
            artifact('a', 1_000),
            ArtifactRecord {
                run_id: None,
                ..artifact('c', 500)
            }
        ]
    );
    assert_eq!(store.list_artifacts(1).unwrap().len(), 1);
    let last = store.list_events(0, 100).unwrap().pop().unwrap();
    assert_eq!(last.kind, "artifact.stored");
    assert_eq!(last.subject, format!("artifact/{}", "c".repeat(64)));
    assert_eq!(last.actor, "lastmile");
}

#[test]
fn cache_entries_are_stored_replaced_and_found() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let first = store.create_run(&new_run(&["build"])).unwrap();
    let second = store.create_run(&new_run(&["build"])).unwrap();
    assert_eq!(store.cache_get("key").unwrap(), None);
    let entry = CacheEntry {
        key: "key".into(),
        step: "build".into(),
        run_id: first,
        outputs_blob: None,
    };
    let before = event_count(&store);
    store.cache_put(&entry).unwrap();
    assert_eq!(event_count(&store), before + 1);
    assert_eq!(store.cache_get("key").unwrap(), Some(entry));

    let replacement = CacheEntry {
        key: "key".into(),
        step: "build".into(),
        run_id: second,
        outputs_blob: Some("f".repeat(64)),
    };
    store.cache_put(&replacement).unwrap();
    assert_eq!(store.cache_get("key").unwrap(), Some(replacement));
    assert_eq!(store.cache_get("other").unwrap(), None);
}

#[test]
fn runs_are_listed_newest_first_and_events_page_by_id() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let runs: Vec<_> = (0..5)
        .map(|_| store.create_run(&new_run(&["a"])).unwrap())
        .collect();
    let listed: Vec<_> = store
        .list_runs(3)
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(listed, [runs[4], runs[3], runs[2]]);
    assert_eq!(store.get_run(12345).unwrap(), None);
    assert!(store.list_steps(12345).unwrap().is_empty());

    let first_page = store.list_events(0, 2).unwrap();
    assert_eq!(first_page.len(), 2);
    let rest = store.list_events(first_page[1].id, 100).unwrap();
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|event| event.id > first_page[1].id));
    assert_eq!(rest[0].data["steps"], serde_json::json!(["a"]));
}

#[test]
fn events_cannot_be_updated_or_deleted() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    store.create_run(&new_run(&["a"])).unwrap();
    let connection = raw_connection(state.path());
    let update = connection
        .execute("UPDATE events SET kind = 'forged'", [])
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = connection.execute("DELETE FROM events", []).unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    assert_eq!(store.list_events(0, 10).unwrap()[0].kind, "run.started");
}

#[test]
fn reopening_keeps_data_and_does_not_migrate_twice() {
    let state = tempfile::tempdir().unwrap();
    let run = {
        let store = open(state.path());
        let run = store.create_run(&new_run(&["a"])).unwrap();
        store
            .finish_run(run, RunStatus::Succeeded, None, None)
            .unwrap();
        run
    };
    for _ in 0..3 {
        let store = open(state.path());
        assert_eq!(
            store.get_run(run).unwrap().unwrap().status,
            RunStatus::Succeeded
        );
        assert_eq!(event_count(&store), 2);
    }
    let connection = raw_connection(state.path());
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 6);
    let journal: String = connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn a_database_from_a_newer_lastmile_is_refused_with_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    drop(open(state.path()));
    raw_connection(state.path())
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let error = SqliteStore::open(state.path()).unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::SchemaTooNew {
                found: 7,
                known: 6,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("lastmile.db"), "{message}");
    assert!(
        message.contains("schema 7, this build knows 6"),
        "{message}"
    );
    assert!(message.contains("upgrade lastmile"), "{message}");
}

#[test]
fn readers_and_a_writer_work_at_once() {
    let state = tempfile::tempdir().unwrap();
    let writer_store = Arc::new(open(state.path()));
    let run = writer_store.create_run(&new_run(&["build"])).unwrap();
    // A second store on the same file: its own connection, as another process would have.
    let (reader_store, report) = SqliteStore::open(state.path()).unwrap();
    assert!(
        report.interrupted_runs.is_empty(),
        "a live run is not interrupted"
    );

    let writer = {
        let store = Arc::clone(&writer_store);
        std::thread::spawn(move || {
            for batch in 0..200 {
                let lines: Vec<_> = (0..20)
                    .map(|n| line(1, LogStream::Stdout, &format!("{batch}.{n}")))
                    .collect();
                store.append_logs(run, "build", &lines).unwrap();
            }
        })
    };
    let same_store_reader = {
        let store = Arc::clone(&writer_store);
        std::thread::spawn(move || {
            for _ in 0..100 {
                store.read_logs(run, Some("build")).unwrap();
                store.list_runs(10).unwrap();
            }
        })
    };
    let mut previous = 0;
    for _ in 0..200 {
        let seen = reader_store.read_logs(run, None).unwrap().len();
        assert!(
            seen >= previous && seen % 20 == 0,
            "whole batches only: {seen}"
        );
        previous = seen;
        reader_store.list_events(0, 10).unwrap();
    }
    writer.join().unwrap();
    same_store_reader.join().unwrap();
    let all = reader_store.read_logs(run, Some("build")).unwrap();
    assert_eq!(all.len(), 4_000);
    assert_eq!(all[3_999].1.text, "199.19");
}

#[test]
fn the_store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    let state = tempfile::tempdir().unwrap();
    let shared: Arc<dyn Store> = Arc::new(open(state.path()));
    assert!(shared.list_runs(1).unwrap().is_empty());
}

#[test]
fn a_schema_3_database_migrates_to_the_newest_keeping_its_data() {
    let state = tempfile::tempdir().unwrap();
    let run = {
        let store = open(state.path());
        let run = store.create_run(&new_run(&["a"])).unwrap();
        store
            .finish_run(run, RunStatus::Succeeded, None, None)
            .unwrap();
        store
            .set_flag_override("beta", &serde_json::json!({"enabled": true}), "local:alice")
            .unwrap();
        run
    };
    // Back to what schema 3 was: migration 6 added the steps' process
    // columns, migration 5 renamed `error` and added `analysis` and an
    // index, migration 4 only added these tables.
    raw_connection(state.path())
        .execute_batch(
            "ALTER TABLE steps DROP COLUMN process_group;
             ALTER TABLE steps DROP COLUMN process_started;
             DROP INDEX events_by_subject;
             ALTER TABLE deployments DROP COLUMN analysis;
             ALTER TABLE deployments RENAME COLUMN reason TO error;
             DROP TABLE tokens; DROP TABLE secrets; DROP TABLE commits; PRAGMA user_version = 3;",
        )
        .unwrap();
    {
        let connection = raw_connection(state.path());
        let tables: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('tokens', 'secrets', 'commits')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    let store = open(state.path());
    assert_eq!(
        store.get_run(run).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    assert_eq!(store.flag_overrides().unwrap().len(), 1);
    assert_eq!(event_count(&store), 3);
    store
        .create_token(
            "ci",
            lastmile_store::Role::Viewer,
            &lastmile_store::hash_token("lmt_x"),
            "local:alice",
        )
        .unwrap();
    store
        .put_secret("hello", "A", &[0; 24], b"sealed", "local:alice")
        .unwrap();
    assert!(store.list_commits("hello", 10).unwrap().is_empty());
    let version: i64 = raw_connection(state.path())
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 6);
}
