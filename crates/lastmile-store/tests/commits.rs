//! Commits the watcher saw: recorded once, updated field by field, listed newest first.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use lastmile_store::{CommitRecord, CommitStatus, SqliteStore, Store, StoreError};

fn open(state_dir: &Path) -> SqliteStore {
    SqliteStore::open(state_dir).unwrap().0
}

fn commit(app: &str, sha: &str, seen_at: i64) -> CommitRecord {
    CommitRecord {
        app: app.into(),
        sha: sha.into(),
        branch: "main".into(),
        committed_at: seen_at - 1_000,
        author: "Alice <alice@example.com>".into(),
        subject: format!("change {sha}"),
        seen_at,
        source: "poll".into(),
        status: CommitStatus::Seen,
        run_id: None,
        release_id: None,
        error: None,
    }
}

#[test]
fn a_commit_is_recorded_once() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let first = commit("hello", "aaaa", 1_000);
    assert!(store.record_commit(&first).unwrap());
    let mut again = commit("hello", "aaaa", 2_000);
    again.source = "webhook".into();
    again.subject = "something else".into();
    assert!(!store.record_commit(&again).unwrap());
    assert_eq!(store.get_commit("hello", "aaaa").unwrap().unwrap(), first);
    // Same sha, other app: its own row.
    assert!(
        store
            .record_commit(&commit("other", "aaaa", 1_500))
            .unwrap()
    );
    assert!(store.get_commit("hello", "bbbb").unwrap().is_none());

    let events = store.list_events(0, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["commit.seen", "commit.seen"]);
    assert_eq!(events[0].subject, "commit/hello/aaaa");
    assert_eq!(events[0].data["source"], "poll");
}

#[test]
fn updates_overwrite_given_fields_and_keep_the_rest() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    store
        .record_commit(&commit("hello", "aaaa", 1_000))
        .unwrap();

    store
        .update_commit("hello", "aaaa", CommitStatus::Running, Some(7), None, None)
        .unwrap();
    let running = store.get_commit("hello", "aaaa").unwrap().unwrap();
    assert_eq!(running.status, CommitStatus::Running);
    assert_eq!(running.run_id, Some(7));
    assert_eq!(running.release_id, None);

    store
        .update_commit(
            "hello",
            "aaaa",
            CommitStatus::Built,
            None,
            Some("rel1"),
            None,
        )
        .unwrap();
    store
        .update_commit(
            "hello",
            "aaaa",
            CommitStatus::Failed,
            None,
            None,
            Some("health check failed"),
        )
        .unwrap();
    let failed = store.get_commit("hello", "aaaa").unwrap().unwrap();
    assert_eq!(failed.status, CommitStatus::Failed);
    assert_eq!(failed.run_id, Some(7));
    assert_eq!(failed.release_id.as_deref(), Some("rel1"));
    assert_eq!(failed.error.as_deref(), Some("health check failed"));
    assert_eq!(failed.subject, "change aaaa");

    let error = store
        .update_commit("hello", "zzzz", CommitStatus::Running, None, None, None)
        .unwrap_err();
    assert!(
        matches!(error, StoreError::CommitNotFound { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("zzzz"), "{error}");

    let kinds: Vec<_> = store
        .list_events(0, 100)
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "commit.seen",
            "commit.updated",
            "commit.updated",
            "commit.updated"
        ]
    );
}

#[test]
fn commits_list_newest_seen_first_per_app() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    for (sha, seen_at) in [("b", 2_000), ("a", 1_000), ("d", 3_000), ("c", 3_000)] {
        store.record_commit(&commit("hello", sha, seen_at)).unwrap();
    }
    store.record_commit(&commit("other", "x", 9_000)).unwrap();
    let shas = |limit| -> Vec<String> {
        store
            .list_commits("hello", limit)
            .unwrap()
            .into_iter()
            .map(|commit| commit.sha)
            .collect()
    };
    // Same seen_at: the one recorded later first.
    assert_eq!(shas(10), ["c", "d", "b", "a"]);
    assert_eq!(shas(2), ["c", "d"]);
    assert!(store.list_commits("nobody", 10).unwrap().is_empty());
}

#[test]
fn statuses_read_back_from_the_text_stored_and_an_unknown_one_is_named() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    store
        .record_commit(&commit("hello", "aaaa", 1_000))
        .unwrap();
    let connection = rusqlite::Connection::open(state.path().join("lastmile.db")).unwrap();
    for text in [
        "seen",
        "running",
        "built",
        "failed",
        "deployed",
        "rolled-back",
    ] {
        connection
            .execute("UPDATE commits SET status = ?1 WHERE sha = 'aaaa'", [text])
            .unwrap();
        let status = store.get_commit("hello", "aaaa").unwrap().unwrap().status;
        assert_eq!(status.as_str(), text);
        assert_eq!(status.to_string(), text);
        assert_eq!(serde_json::to_value(status).unwrap(), text);
        assert_eq!(text.parse::<CommitStatus>(), Ok(status));
    }
    connection
        .execute(
            "UPDATE commits SET status = 'shipped' WHERE sha = 'aaaa'",
            [],
        )
        .unwrap();
    let error = store.get_commit("hello", "aaaa").unwrap_err().to_string();
    assert!(
        error.contains("`shipped`") && error.contains("status"),
        "{error}"
    );
    let error = "shipped".parse::<CommitStatus>().unwrap_err().to_string();
    assert_eq!(
        error,
        "`shipped` is not a commit status; use one of seen, running, built, failed, deployed, rolled-back, checked-out"
    );
}
