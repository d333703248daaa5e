//! Releases, environments and deployments: durable, one running deployment
//! per environment, transitions recorded in order.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use lastmile_store::{
    DeploymentKind, DeploymentStatus, EnvironmentState, Phase, SqliteStore, Store, StoreError,
};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn releases_are_content_addressed_and_numbered() {
    let (_dir, store) = store();
    let first = store
        .create_release("hello", "aaaa", None, "app: hello\n")
        .unwrap();
    let again = store
        .create_release("hello", "aaaa", None, "app: hello\n")
        .unwrap();
    let second = store
        .create_release("hello", "aaaa", None, "app: hello # v2\n")
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first.id, second.id);
    assert_eq!(first.version, "v1");
    assert_eq!(second.version, "v2");
    let listed = store.list_releases(10).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.version.as_str())
            .collect::<Vec<_>>(),
        ["v2", "v1"]
    );
    assert_eq!(
        store.get_release(&second.id).unwrap().unwrap().spec_source,
        "app: hello # v2\n"
    );
}

#[test]
fn a_deployment_records_every_transition_and_the_environment_with_it() {
    let (dir, store) = store();
    let v1 = store.create_release("hello", "a1", None, "s1").unwrap();
    let v2 = store.create_release("hello", "a2", None, "s2").unwrap();
    let deployment = store
        .begin_deployment(
            "production",
            Some(&v1.id),
            &v2.id,
            DeploymentKind::Rolling,
            "test",
        )
        .unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Running);
    let err = store
        .begin_deployment(
            "production",
            Some(&v1.id),
            &v2.id,
            DeploymentKind::Rolling,
            "test",
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::DeploymentRunning { .. }), "{err}");

    let mid = EnvironmentState {
        name: "production".into(),
        current_release: Some(v2.id.clone()),
        previous_release: Some(v1.id.clone()),
        weights: vec![(v1.id.clone(), 50), (v2.id.clone(), 50)],
        warm_until: None,
    };
    store
        .advance_deployment(
            deployment.id,
            &Phase::BatchRouted(1),
            &serde_json::json!({"started": 1}),
            Some(&mid),
        )
        .unwrap();
    drop(store);

    // As after a crash: everything written is there.
    let (store, _) = SqliteStore::open(dir.path()).unwrap();
    let running = store.running_deployment("production").unwrap().unwrap();
    assert_eq!(running.phase, Phase::BatchRouted(1));
    assert_eq!(store.get_environment("production").unwrap().unwrap(), mid);

    let done = EnvironmentState {
        weights: vec![(v2.id.clone(), 100)],
        ..mid
    };
    store
        .finish_deployment(
            deployment.id,
            DeploymentStatus::Succeeded,
            None,
            None,
            Some(&done),
        )
        .unwrap();
    assert!(store.running_deployment("production").unwrap().is_none());
    let phases: Vec<Phase> = store
        .deployment_steps(deployment.id)
        .unwrap()
        .into_iter()
        .map(|step| step.phase)
        .collect();
    assert_eq!(
        phases,
        [Phase::Started, Phase::BatchRouted(1), Phase::Succeeded]
    );
    assert_eq!(store.get_environment("production").unwrap().unwrap(), done);
    let kinds: Vec<String> = store
        .list_events(0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&"deployment.started".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"deployment.finished".to_string()),
        "{kinds:?}"
    );
    // A second deployment may start now.
    let second = store
        .begin_deployment(
            "production",
            Some(&v2.id),
            &v1.id,
            DeploymentKind::Rollback,
            "test",
        )
        .unwrap();
    // Each is found by its id.
    let listed = store.list_deployments(10).unwrap();
    for record in &listed {
        assert_eq!(
            store.get_deployment(record.id).unwrap().as_ref(),
            Some(record)
        );
    }
    assert_eq!(
        store.get_deployment(second.id).unwrap().unwrap().strategy,
        DeploymentKind::Rollback
    );
    assert_eq!(store.get_deployment(second.id + 100).unwrap(), None);
}

#[test]
fn finishing_with_running_is_refused() {
    let (_dir, store) = store();
    let v1 = store.create_release("hello", "a1", None, "s1").unwrap();
    let deployment = store
        .begin_deployment("staging", None, &v1.id, DeploymentKind::Recreate, "t")
        .unwrap();
    assert!(
        store
            .finish_deployment(deployment.id, DeploymentStatus::Running, None, None, None)
            .is_err()
    );
    assert!(
        store
            .advance_deployment(999, &Phase::Switched, &serde_json::json!({}), None)
            .is_err()
    );
}

#[test]
fn recorded_events_are_listed_in_order() {
    let (_dir, store) = store();
    let first = store
        .record_event(
            "canary.decision",
            "deployment/1",
            "lastmile",
            &serde_json::json!({"decision": "hold"}),
        )
        .unwrap();
    let second = store
        .record_event(
            "canary.decision",
            "deployment/1",
            "lastmile",
            &serde_json::json!({"decision": "abort"}),
        )
        .unwrap();
    assert!(second > first);
    let events = store.list_events(first - 1, 10).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].data["decision"], "abort");
}

#[test]
fn flag_overrides_are_stored_listed_reset_and_audited() {
    let (_dir, store) = store();
    store
        .set_flag_override(
            "new-checkout",
            &serde_json::json!({"enabled": false}),
            "alice",
        )
        .unwrap();
    store
        .set_flag_override("new-checkout", &serde_json::json!({"enabled": true}), "bob")
        .unwrap();
    let overrides = store.flag_overrides().unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0].value["enabled"], true);
    assert_eq!(overrides[0].actor, "bob");
    assert!(store.clear_flag_override("new-checkout", "carol").unwrap());
    assert!(!store.clear_flag_override("new-checkout", "carol").unwrap());
    assert!(store.flag_overrides().unwrap().is_empty());
    let events: Vec<(String, String)> = store
        .list_events(0, 100)
        .unwrap()
        .into_iter()
        .filter(|event| event.subject == "flag/new-checkout")
        .map(|event| (event.kind, event.actor))
        .collect();
    assert_eq!(
        events,
        [
            ("flag.overridden".to_string(), "alice".to_string()),
            ("flag.overridden".to_string(), "bob".to_string()),
            ("flag.reset".to_string(), "carol".to_string()),
        ]
    );
}

#[test]
fn a_failed_deployment_keeps_its_reason_and_last_analysis_with_the_record() {
    let (dir, store) = store();
    let v1 = store.create_release("hello", "a1", None, "s1").unwrap();
    let v2 = store.create_release("hello", "a2", None, "s2").unwrap();
    let first = store
        .begin_deployment("production", None, &v1.id, DeploymentKind::Canary, "test")
        .unwrap();
    store
        .finish_deployment(first.id, DeploymentStatus::Succeeded, None, None, None)
        .unwrap();
    let canary = store
        .begin_deployment(
            "production",
            Some(&v1.id),
            &v2.id,
            DeploymentKind::Canary,
            "test",
        )
        .unwrap();
    let reason = "canary aborted: error rate 50.00% (9 of 18) against stable's 0.00% (0 of 160)";
    let analysis = serde_json::json!({
        "canary": { "requests": 18, "errors": 9, "p95_ms": 1.5, "p99_ms": 2.0 },
        "stable": { "requests": 160, "errors": 0, "p95_ms": 1.0, "p99_ms": 1.2 },
        "errors": "worse",
    });
    let restored = EnvironmentState {
        name: "production".into(),
        current_release: Some(v1.id.clone()),
        previous_release: None,
        weights: vec![(v1.id.clone(), 100)],
        warm_until: None,
    };
    store
        .finish_deployment(
            canary.id,
            DeploymentStatus::Failed,
            Some(reason),
            Some(&analysis),
            Some(&restored),
        )
        .unwrap();
    drop(store);

    // As after a crash right after the failure was written.
    let (store, _) = SqliteStore::open(dir.path()).unwrap();
    let record = store.get_deployment(canary.id).unwrap().unwrap();
    assert_eq!(record.status, DeploymentStatus::Failed);
    assert_eq!(record.reason.as_deref(), Some(reason));
    assert_eq!(record.analysis.as_ref(), Some(&analysis));
    assert_eq!(
        store.get_environment("production").unwrap().unwrap(),
        restored
    );
    assert_eq!(store.last_deployment("production").unwrap(), Some(record));
    assert_eq!(store.last_deployment("staging").unwrap(), None);
    let finished = store
        .list_events(0, 100)
        .unwrap()
        .into_iter()
        .rfind(|event| event.kind == "deployment.finished")
        .unwrap();
    assert_eq!(finished.subject, format!("deployment/{}", canary.id));
    assert_eq!(finished.data["environment"], "production");
    assert_eq!(finished.data["status"], "failed");
    assert_eq!(finished.data["reason"], reason);
    assert_eq!(finished.data["analysis"], analysis);
    let last_step = store.deployment_steps(canary.id).unwrap().pop().unwrap();
    assert_eq!(last_step.detail["reason"], reason);
    let about: Vec<String> = store
        .list_events_about(&format!("deployment/{}", canary.id), None, 0, 100)
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(about, ["deployment.started", "deployment.finished"]);
}

/// Every phase text the engine writes, as a store written before the
/// phases were typed holds it.
const STORED_PHASES: &[(&str, Phase)] = &[
    ("started", Phase::Started),
    ("starting", Phase::Starting),
    ("batch-1-starting", Phase::BatchStarting(1)),
    ("batch-12-routed", Phase::BatchRouted(12)),
    ("dark", Phase::Dark),
    ("step-3", Phase::Step(3)),
    ("step-1-paused", Phase::StepPaused(1)),
    ("aborting", Phase::Aborting),
    ("switched", Phase::Switched),
    ("succeeded", Phase::Succeeded),
    ("failed", Phase::Failed),
    ("rolled-back", Phase::RolledBack),
];

#[test]
fn phases_and_kinds_read_back_from_the_text_stored_and_write_it_unchanged() {
    let (dir, store) = store();
    let v1 = store.create_release("hello", "a1", None, "s1").unwrap();
    let deployment = store
        .begin_deployment("staging", None, &v1.id, DeploymentKind::Canary, "t")
        .unwrap();
    let connection = rusqlite::Connection::open(dir.path().join("lastmile.db")).unwrap();
    let unknown = [
        ("done", Phase::Other("done".into())),
        ("step-03", Phase::Other("step-03".into())),
        ("step-", Phase::Other("step-".into())),
    ];
    for (text, phase) in STORED_PHASES.iter().cloned().chain(unknown) {
        connection
            .execute(
                "UPDATE deployments SET phase = ?1 WHERE id = ?2",
                rusqlite::params![text, deployment.id],
            )
            .unwrap();
        let read = store.get_deployment(deployment.id).unwrap().unwrap().phase;
        assert_eq!(read, phase, "{text}");
        assert_eq!(read.to_string(), text);
        assert_eq!(serde_json::to_value(&read).unwrap(), text);
        assert_eq!(text.parse::<Phase>(), Ok(phase));
    }
    for text in ["rolling", "blue-green", "recreate", "canary", "rollback"] {
        connection
            .execute(
                "UPDATE deployments SET strategy = ?1 WHERE id = ?2",
                rusqlite::params![text, deployment.id],
            )
            .unwrap();
        let kind = store
            .get_deployment(deployment.id)
            .unwrap()
            .unwrap()
            .strategy;
        assert_eq!(kind.as_str(), text);
        assert_eq!(serde_json::to_value(kind).unwrap(), text);
    }
    // A phase is written as its text.
    store
        .advance_deployment(
            deployment.id,
            &Phase::BatchStarting(2),
            &serde_json::json!({}),
            None,
        )
        .unwrap();
    let written: (String, String) = connection
        .query_row(
            "SELECT phase, (SELECT phase FROM deployment_steps WHERE deployment_id = ?1 ORDER BY seq DESC LIMIT 1) FROM deployments WHERE id = ?1",
            [deployment.id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        written,
        ("batch-2-starting".into(), "batch-2-starting".into())
    );
    // A kind this build does not know is named, with those it knows.
    connection
        .execute(
            "UPDATE deployments SET strategy = 'shadow' WHERE id = ?1",
            [deployment.id],
        )
        .unwrap();
    let error = store.list_deployments(10).unwrap_err().to_string();
    assert!(
        error.contains("`shadow`") && error.contains("strategy"),
        "{error}"
    );
    assert_eq!(
        "shadow".parse::<DeploymentKind>().unwrap_err().to_string(),
        "`shadow` is not a deployment kind; use one of rolling, blue-green, recreate, canary, rollback, restore"
    );
}
