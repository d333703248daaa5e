//! A real SQLite store in a temp dir, filled through the `Store` trait.

use lastmile_store::{
    DeploymentKind, DeploymentRecord, DeploymentStatus, NewRun, Phase, ReleaseRecord, RunStatus,
    SqliteStore, Store,
};

/// A fresh store; keep the dir alive as long as the store.
pub(crate) fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = SqliteStore::open(dir.path()).expect("open the store");
    (dir, store)
}

/// A succeeded run and the release it built; `n` makes the content unique.
pub(crate) fn release(store: &SqliteStore, n: u32) -> ReleaseRecord {
    let run = store
        .create_run(&NewRun {
            app: "hello".into(),
            spec_dir: "/srv/hello".into(),
            commit: Some(format!("c{n}")),
            steps: vec!["build".into()],
            actor: "test".into(),
        })
        .expect("create run");
    store
        .finish_run(run, RunStatus::Succeeded, None, None)
        .expect("finish run");
    store
        .create_release(
            "hello",
            &format!("artifact{n}"),
            Some(run),
            &format!("spec {n}"),
        )
        .expect("create release")
}

/// Begins, advances and finishes one deployment; returns it as stored.
pub(crate) fn deploy(
    store: &SqliteStore,
    environment: &str,
    from: Option<&ReleaseRecord>,
    to: &ReleaseRecord,
    strategy: DeploymentKind,
    status: DeploymentStatus,
) -> DeploymentRecord {
    let started = store
        .begin_deployment(
            environment,
            from.map(|r| r.id.as_str()),
            &to.id,
            strategy,
            "test",
        )
        .expect("begin deployment");
    store
        .advance_deployment(started.id, &Phase::Switched, &serde_json::json!({}), None)
        .expect("advance deployment");
    let error = (status == DeploymentStatus::Failed).then_some("health check failed");
    store
        .finish_deployment(started.id, status, error, None, None)
        .expect("finish deployment");
    store
        .list_deployments(usize::MAX)
        .expect("list deployments")
        .into_iter()
        .find(|d| d.id == started.id)
        .expect("the deployment just finished")
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_millis() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("millis fit i64")
}

/// Production: r1 ok, r2 ok, rollback to r1, r3 fails, r4 ok. Staging: r1 ok.
/// Returns the releases and the production deployments in order.
pub(crate) fn crafted(store: &SqliteStore) -> (Vec<ReleaseRecord>, Vec<DeploymentRecord>) {
    use DeploymentStatus::*;
    let r: Vec<_> = (1..=4).map(|n| release(store, n)).collect();
    let prod = "production";
    let d = vec![
        deploy(store, prod, None, &r[0], DeploymentKind::Rolling, Succeeded),
        deploy(
            store,
            prod,
            Some(&r[0]),
            &r[1],
            DeploymentKind::Rolling,
            Succeeded,
        ),
        deploy(
            store,
            prod,
            Some(&r[1]),
            &r[0],
            DeploymentKind::Rollback,
            RolledBack,
        ),
        deploy(
            store,
            prod,
            Some(&r[0]),
            &r[2],
            DeploymentKind::Canary,
            Failed,
        ),
        deploy(
            store,
            prod,
            Some(&r[0]),
            &r[3],
            DeploymentKind::BlueGreen,
            Succeeded,
        ),
    ];
    deploy(
        store,
        "staging",
        None,
        &r[0],
        DeploymentKind::Rolling,
        Succeeded,
    );
    (r, d)
}
