//! The engine against a `FakeHost`, in milliseconds: every strategy runs
//! through its phases, and a deployment stopped after each transition it
//! wrote is settled by `restore` (and `resume`) on a fresh engine over the
//! same SQLite store, with the route on what the store says serves.
//!
//! `FakeHost` is a fake because a real host needs real processes and ports
//! for every instance, which the end-to-end tests of `lastmile-server`
//! already start; here only the engine's decisions and writes are judged.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lastmile_host::{
    CertificateSpec, CheckOutcome, HostError, HostHandle, InstanceInfo, InstanceSpec,
    InstanceState, ProbeAnswer, ReleaseRef, ReleaseStats, RouteSpec,
};
use lastmile_rollout::{DeploymentOutcome, DeploymentStatus, Engine, Progress};
use lastmile_spec::{Environment, Service, Strategy};
use lastmile_store::{Phase, ReleaseRecord, SqliteStore, Store};

/// A host in memory: instances (ready as soon as started), the routes it
/// was given and the stats it is told to report. It can be told to fail a
/// call, or to stop answering at its n-th call: the engine then waits
/// forever there, as a controller killed at that point would.
#[derive(Debug, Default)]
struct FakeHost {
    state: Mutex<FakeState>,
    frozen: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct FakeState {
    instances: BTreeMap<String, InstanceInfo>,
    routes: BTreeMap<String, RouteSpec>,
    stats: BTreeMap<String, ReleaseStats>,
    /// `(call, text)`: that call fails when its subject contains the text.
    failing: Vec<(&'static str, String)>,
    calls: usize,
    freeze_at: Option<usize>,
}

impl FakeHost {
    fn new() -> Arc<FakeHost> {
        Arc::new(FakeHost::default())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Every later `call` whose subject (instance id, release id or
    /// environment) contains `text` fails.
    fn fail(&self, call: &'static str, text: &str) {
        self.state().failing.push((call, text.to_string()));
    }

    /// The `call`-th call from now on never answers.
    fn freeze_at(&self, call: usize) {
        let mut state = self.state();
        state.freeze_at = Some(state.calls + call);
    }

    fn set_stats(&self, release: &str, requests: u64, errors: u64) {
        self.state().stats.insert(
            release.to_string(),
            ReleaseStats {
                requests,
                errors_5xx: errors,
                ..ReleaseStats::default()
            },
        );
    }

    async fn enter(&self, call: &'static str, subject: &str) -> Result<(), HostError> {
        let (freeze, fail) = {
            let mut state = self.state();
            state.calls += 1;
            let freeze = state.freeze_at == Some(state.calls);
            let fail = state
                .failing
                .iter()
                .any(|(failing, text)| *failing == call && subject.contains(text.as_str()));
            (freeze, fail)
        };
        if freeze {
            self.frozen.notify_one();
            std::future::pending::<()>().await;
        }
        if fail {
            return Err(HostError::Other {
                message: format!("{call} {subject} failed as the test asked"),
            });
        }
        Ok(())
    }

    /// The releases the environment's route sends user traffic to.
    fn serving(&self, environment: &str) -> Vec<String> {
        self.state()
            .routes
            .get(environment)
            .map(|route| {
                route
                    .weights
                    .iter()
                    .filter(|(_, weight)| *weight > 0)
                    .map(|(release, _)| release.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn running(&self, environment: &str, release: &str) -> usize {
        self.state()
            .instances
            .values()
            .filter(|instance| instance.belongs_to(environment) && instance.release_id == release)
            .count()
    }
}

#[async_trait::async_trait]
impl HostHandle for FakeHost {
    fn name(&self) -> &str {
        "fake"
    }

    async fn ensure_release(&self, release: &ReleaseRef) -> Result<(), HostError> {
        self.enter("ensure_release", &release.id).await
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> Result<InstanceInfo, HostError> {
        self.enter("start_instance", &spec.instance_id).await?;
        let info = InstanceInfo {
            instance_id: spec.instance_id.clone(),
            environment: spec.environment.clone(),
            release_id: spec.release.id.clone(),
            index: spec.index,
            addr: "127.0.0.1:9".parse().unwrap(),
            state: InstanceState::Ready,
            restarts: 0,
            pid: None,
            leader_pid: None,
            main_pid: None,
        };
        self.state()
            .instances
            .insert(spec.instance_id.clone(), info.clone());
        Ok(info)
    }

    async fn stop_instance(&self, instance_id: &str) -> Result<(), HostError> {
        self.enter("stop_instance", instance_id).await?;
        self.state().instances.remove(instance_id);
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceInfo>, HostError> {
        self.enter("instances", "").await?;
        Ok(self.state().instances.values().cloned().collect())
    }

    async fn set_route(&self, route: &RouteSpec) -> Result<std::net::SocketAddr, HostError> {
        self.enter("set_route", &route.environment).await?;
        self.state()
            .routes
            .insert(route.environment.clone(), route.clone());
        Ok(route.listen)
    }

    async fn set_certificate(&self, _certificate: &CertificateSpec) -> Result<(), HostError> {
        self.enter("set_certificate", "").await
    }

    async fn set_challenge(
        &self,
        token: &str,
        _key_authorization: Option<&str>,
    ) -> Result<(), HostError> {
        self.enter("set_challenge", token).await
    }

    async fn stats(&self, release_id: &str, _window: Duration) -> Result<ReleaseStats, HostError> {
        self.enter("stats", release_id).await?;
        Ok(self
            .state()
            .stats
            .get(release_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn prune_releases(&self, _keep: &[String]) -> Result<(), HostError> {
        self.enter("prune_releases", "").await
    }

    async fn probe(
        &self,
        instance_id: &str,
        _path: &str,
        _timeout: Duration,
    ) -> Result<ProbeAnswer, HostError> {
        self.enter("probe", instance_id).await?;
        Ok(ProbeAnswer {
            status: 200,
            body: String::new(),
        })
    }

    async fn run_check(
        &self,
        instance_id: &str,
        _command: &str,
        _timeout: Duration,
    ) -> Result<CheckOutcome, HostError> {
        self.enter("run_check", instance_id).await?;
        Ok(CheckOutcome {
            exit_code: Some(0),
            last_lines: Vec::new(),
        })
    }
}

#[derive(Debug)]
struct Quiet;

impl Progress for Quiet {
    fn step(&self, _text: &str) {}
}

const SPEC: &str = r#"
app: fake
pipeline:
  steps:
    - name: build
      run: "true"
service:
  run: ./serve
environments:
  rolling:
    instances: 3
    strategy: { type: rolling, batch: 1, max_surge: 1 }
    route: { listen: "127.0.0.1:18001" }
  blue-green:
    instances: 2
    strategy: { type: blue-green, rollback_window: 10m }
    route: { listen: "127.0.0.1:18002" }
  recreate:
    instances: 2
    strategy: recreate
    route: { listen: "127.0.0.1:18003" }
  canary:
    strategy: { type: canary, steps: [10, 50, 100], min_requests: 0 }
    route: { listen: "127.0.0.1:18004" }
  dark:
    strategy:
      type: canary
      steps: [25, 100]
      min_requests: 0
      mirror: { percent: 50, min_requests: 0 }
    route: { listen: "127.0.0.1:18005" }
"#;

/// The spec's service and environments, with the canaries' waits at zero
/// (the spec allows no zero there) so a step decides at its first look.
fn spec() -> (Service, Vec<Environment>) {
    let (spec, _) = lastmile_spec::parse("lastmile.yaml", SPEC).unwrap();
    let mut environments = spec.environments;
    for environment in &mut environments {
        if let Strategy::Canary(canary) = &mut environment.strategy {
            canary.step_duration = Duration::ZERO;
            canary.analysis.interval = Duration::ZERO;
            if let Some(mirror) = &mut canary.mirror {
                mirror.duration = Duration::ZERO;
            }
        }
    }
    (spec.service.unwrap(), environments)
}

fn environment(name: &str) -> Environment {
    spec().1.into_iter().find(|env| env.name == name).unwrap()
}

fn open(dir: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(dir).unwrap().0)
}

fn engine(store: &Arc<SqliteStore>, host: &Arc<FakeHost>) -> Engine {
    Engine::new(
        store.clone() as Arc<dyn Store>,
        vec![host.clone() as Arc<dyn HostHandle>],
    )
}

fn releases(store: &SqliteStore) -> (ReleaseRecord, ReleaseRecord) {
    (
        store
            .create_release("fake", "artifact-1", None, "v1")
            .unwrap(),
        store
            .create_release("fake", "artifact-2", None, "v2")
            .unwrap(),
    )
}

async fn deploy(
    engine: &Engine,
    environment: &Environment,
    release: &ReleaseRecord,
) -> DeploymentOutcome {
    let service = spec().0;
    let service_of = |_: &ReleaseRecord| Ok(spec().0);
    engine
        .deploy(environment, &service, release, &service_of, &Quiet)
        .await
        .unwrap()
}

fn phases(store: &SqliteStore, deployment: i64) -> Vec<String> {
    store
        .deployment_steps(deployment)
        .unwrap()
        .into_iter()
        .map(|step| step.phase.to_string())
        .collect()
}

/// The phases each strategy writes moving v1 to v2 (v1 already serving).
fn expected_phases(environment: &str) -> Vec<&'static str> {
    match environment {
        "rolling" => vec![
            "started",
            "batch-1-starting",
            "batch-1-routed",
            "batch-2-starting",
            "batch-2-routed",
            "batch-3-starting",
            "batch-3-routed",
            "switched",
            "succeeded",
        ],
        "blue-green" => vec!["started", "starting", "switched", "succeeded"],
        "recreate" => vec!["started", "switched", "succeeded"],
        "canary" => vec![
            "started",
            "starting",
            "step-1",
            "step-2",
            "switched",
            "succeeded",
        ],
        "dark" => vec![
            "started",
            "starting",
            "dark",
            "step-1",
            "switched",
            "succeeded",
        ],
        other => panic!("no environment {other}"),
    }
}

const STRATEGIES: [&str; 5] = ["rolling", "blue-green", "recreate", "canary", "dark"];

#[tokio::test(start_paused = true)]
async fn every_strategy_runs_through_its_phases_to_the_new_release() {
    for name in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (v1, v2) = releases(&store);
        let host = FakeHost::new();
        let engine = engine(&store, &host);
        let environment = environment(name);

        let first = deploy(&engine, &environment, &v1).await;
        assert_eq!(
            first.status,
            DeploymentStatus::Succeeded,
            "{name}: {first:?}"
        );
        let outcome = deploy(&engine, &environment, &v2).await;
        assert_eq!(
            outcome.status,
            DeploymentStatus::Succeeded,
            "{name}: {outcome:?}"
        );
        assert_eq!(
            phases(&store, outcome.deployment.unwrap()),
            expected_phases(name),
            "{name}"
        );
        assert_eq!(host.serving(name), [v2.id.as_str()], "{name}");
        assert_eq!(
            host.running(name, &v2.id),
            environment.instances as usize,
            "{name}"
        );
        let state = store.get_environment(name).unwrap().unwrap();
        assert_eq!(
            state.current_release.as_deref(),
            Some(v2.id.as_str()),
            "{name}"
        );
        assert_eq!(
            state.previous_release.as_deref(),
            Some(v1.id.as_str()),
            "{name}"
        );
        // Blue-green keeps the old set warm for an instant rollback, a
        // promoted canary until the next tick ends its (zero) guard.
        let warm = match name {
            "blue-green" => 2,
            "canary" | "dark" => 1,
            _ => 0,
        };
        assert_eq!(host.running(name, &v1.id), warm, "{name}");
        if warm == 1 {
            engine
                .tick(std::slice::from_ref(&environment))
                .await
                .unwrap();
            assert_eq!(host.running(name, &v1.id), 0, "{name}");
        }
    }
}

/// How a restarted controller settles the deployment it finds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Resumed {
    /// The resumed canary's analysis passes.
    Healthy,
    /// The resumed canary's errors abort it.
    Failing,
}

/// Deploys v2 over v1 with the host frozen at its `call`-th call (the
/// controller killed there), then restarts: a fresh host (instances die with
/// the process that ran them) and a fresh engine over the same store run
/// `restore`, and `resume` for a canary. Returns the phases written before
/// the stop, or `None` when the deployment finished before that call.
async fn crash_and_restore(name: &str, call: usize, resumed: Resumed) -> Option<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let environment = environment(name);
    let (v1, v2, deployment, before) = {
        let store = open(dir.path());
        let (v1, v2) = releases(&store);
        let host = FakeHost::new();
        let engine = engine(&store, &host);
        deploy(&engine, &environment, &v1).await;
        host.freeze_at(call);
        let stopped = tokio::select! {
            _ = deploy(&engine, &environment, &v2) => false,
            () = host.frozen.notified() => true,
        };
        if !stopped {
            return None;
        }
        let deployment = store.last_deployment(name).unwrap().unwrap();
        (v1, v2, deployment.id, phases(&store, deployment.id))
    };

    let store = open(dir.path());
    let host = FakeHost::new();
    let engine = engine(&store, &host);
    let service_of = |_: &ReleaseRecord| Ok(spec().0);
    let restored = engine
        .restore(std::slice::from_ref(&environment), &service_of, &Quiet)
        .await
        .unwrap();
    let last = before.last().unwrap().as_str();
    let stopped_at: Phase = last.parse().unwrap();
    if stopped_at.is_canary_step() {
        assert_eq!(
            restored.resumable,
            [(name.to_string(), deployment)],
            "{name} at {last}"
        );
        if resumed == Resumed::Failing {
            host.set_stats(&v1.id, 1000, 0);
            host.set_stats(&v2.id, 200, 100);
        }
        let outcome = engine
            .resume(&environment, deployment, &service_of, &Quiet)
            .await
            .unwrap();
        let expected = match resumed {
            Resumed::Healthy => DeploymentStatus::Succeeded,
            Resumed::Failing => DeploymentStatus::Failed,
        };
        assert_eq!(outcome.status, expected, "{name} at {last}: {outcome:?}");
        assert_eq!(
            outcome.aborted,
            resumed == Resumed::Failing,
            "{name} at {last}"
        );
        // A dark launch that was interrupted is analysed again from its start
        // before any user traffic moves.
        let after = phases(&store, deployment);
        if stopped_at == Phase::Dark {
            assert_eq!(after[before.len()], "dark", "{name}: {after:?}");
        }
    } else {
        assert!(restored.resumable.is_empty(), "{name} at {last}");
    }

    // The recorded end and what the host serves agree.
    let record = store.get_deployment(deployment).unwrap().unwrap();
    let decided = matches!(stopped_at, Phase::Switched | Phase::Succeeded);
    let expected_status = if decided || (stopped_at.is_canary_step() && resumed == Resumed::Healthy)
    {
        DeploymentStatus::Succeeded
    } else {
        DeploymentStatus::Failed
    };
    assert_eq!(
        record.status, expected_status,
        "{name} at {last}: {record:?}"
    );
    let serving = if expected_status == DeploymentStatus::Succeeded {
        &v2
    } else {
        &v1
    };
    assert_eq!(
        host.serving(name),
        [serving.id.as_str()],
        "{name} at {last}"
    );
    assert_eq!(
        host.running(name, &serving.id),
        environment.instances as usize,
        "{name} at {last}"
    );
    let state = store.get_environment(name).unwrap().unwrap();
    assert_eq!(
        state.current_release.as_deref(),
        Some(serving.id.as_str()),
        "{name} at {last}"
    );
    assert_eq!(
        state.weights,
        [(serving.id.clone(), 100)],
        "{name} at {last}"
    );
    assert!(
        store.running_deployment(name).unwrap().is_none(),
        "{name} at {last}"
    );
    Some(before)
}

#[tokio::test(start_paused = true)]
async fn a_deployment_stopped_after_any_transition_is_completed_or_rolled_back_by_restore() {
    for name in STRATEGIES {
        let resumes: &[Resumed] = if matches!(name, "canary" | "dark") {
            &[Resumed::Healthy, Resumed::Failing]
        } else {
            &[Resumed::Healthy]
        };
        for &resumed in resumes {
            let mut stopped_after = Vec::new();
            let mut call = 1;
            while let Some(before) = crash_and_restore(name, call, resumed).await {
                stopped_after.push(before.len());
                call += 1;
            }
            // Every transition was the last one written at some stop.
            stopped_after.dedup();
            let written = expected_phases(name).len();
            assert_eq!(
                stopped_after,
                (1..=written).collect::<Vec<_>>(),
                "{name} ({resumed:?})"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_release_that_fails_to_start_leaves_traffic_on_the_old_one() {
    for name in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let (v1, v2) = releases(&store);
        let host = FakeHost::new();
        let engine = engine(&store, &host);
        let environment = environment(name);
        deploy(&engine, &environment, &v1).await;
        host.fail("start_instance", lastmile_store::short_id(&v2.id));

        let outcome = deploy(&engine, &environment, &v2).await;
        assert_eq!(
            outcome.status,
            DeploymentStatus::Failed,
            "{name}: {outcome:?}"
        );
        assert!(!outcome.aborted, "{name}");
        assert!(
            outcome
                .error
                .as_deref()
                .unwrap()
                .contains("failed as the test asked"),
            "{name}: {outcome:?}"
        );
        assert_eq!(host.serving(name), [v1.id.as_str()], "{name}");
        assert_eq!(
            host.running(name, &v1.id),
            environment.instances as usize,
            "{name}"
        );
        assert_eq!(host.running(name, &v2.id), 0, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_is_recorded_and_reported_as_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (v1, v2) = releases(&store);
    let host = FakeHost::new();
    let engine = engine(&store, &host);
    let environment = environment("blue-green");
    deploy(&engine, &environment, &v1).await;
    deploy(&engine, &environment, &v2).await;

    let service_of = |_: &ReleaseRecord| Ok(spec().0);
    let outcome = engine
        .rollback(&environment, None, &service_of, &Quiet)
        .await
        .unwrap();
    assert_eq!(outcome.status, DeploymentStatus::RolledBack);
    let record = store
        .get_deployment(outcome.deployment.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.status, DeploymentStatus::RolledBack);
    assert_eq!(record.strategy, lastmile_store::DeploymentKind::Rollback);
    assert_eq!(host.serving("blue-green"), [v1.id.as_str()]);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_stopped_after_any_transition_ends_rolled_back_or_on_the_release_it_left() {
    let environment = environment("blue-green");
    let service_of = |_: &ReleaseRecord| Ok(spec().0);
    let mut stopped_after = Vec::new();
    for call in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let (v1, v2, deployment) = {
            let store = open(dir.path());
            let (v1, v2) = releases(&store);
            let host = FakeHost::new();
            let engine = engine(&store, &host);
            deploy(&engine, &environment, &v1).await;
            deploy(&engine, &environment, &v2).await;
            host.freeze_at(call);
            let stopped = tokio::select! {
                _ = engine.rollback(&environment, None, &service_of, &Quiet) => false,
                () = host.frozen.notified() => true,
            };
            if !stopped {
                break;
            }
            (
                v1,
                v2,
                store.last_deployment("blue-green").unwrap().unwrap(),
            )
        };
        let last = deployment.phase.clone();
        stopped_after.push(last.to_string());

        let store = open(dir.path());
        let host = FakeHost::new();
        engine(&store, &host)
            .restore(std::slice::from_ref(&environment), &service_of, &Quiet)
            .await
            .unwrap();
        let record = store.get_deployment(deployment.id).unwrap().unwrap();
        let (status, serving) = if matches!(last, Phase::Switched | Phase::RolledBack) {
            (DeploymentStatus::RolledBack, &v1)
        } else {
            (DeploymentStatus::Failed, &v2)
        };
        assert_eq!(record.status, status, "at {last}");
        assert_eq!(
            host.serving("blue-green"),
            [serving.id.as_str()],
            "at {last}"
        );
        assert_eq!(host.running("blue-green", &serving.id), 2, "at {last}");
    }
    stopped_after.dedup();
    assert_eq!(stopped_after, ["started", "switched", "rolled-back"]);
}
