//! `Engine`: the strategies, rollback and restore, over every host.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lastmile_host::{
    HealthSpec, HostError, HostHandle, InstanceInfo, InstanceSpec, InstanceState, ReleaseRef,
    RouteSpec, StopSignal, StopSpec,
};
use lastmile_spec::{Environment, Service, Strategy};
use lastmile_store::{
    DeploymentKind, DeploymentRecord, DeploymentStatus, EnvironmentState, Phase, ReleaseRecord,
    Store, StoreError,
};
use serde_json::json;

use crate::DeploymentOutcome;
use crate::canary::CanaryControl;
use crate::webhook::{self, Notification};
pub(crate) use lastmile_store::now_millis;

/// Where the engine reports what it is doing, one line per transition.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// One line, e.g. `batch 1/2: v3 ready on local (2 instances)`.
    fn step(&self, text: &str);
}

/// How the engine finds the service settings a release runs with (from the
/// spec the release was built with).
pub type ServiceOf<'a> = dyn Fn(&ReleaseRecord) -> Result<Service, String> + Send + Sync + 'a;

/// Why the engine could not even begin (a failed deployment is not an
/// error: it is an outcome with status `failed`).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The environment cannot be deployed as configured.
    #[error("{0}")]
    Invalid(String),
    /// The environment's state does not allow it now: nothing to roll back
    /// to, or the target is what it already serves.
    #[error("{0}")]
    Conflict(String),
    /// The deployment put all traffic on its release (that much was
    /// written), but the store failed to record how it ended: it is not
    /// reported as succeeded, and the store still shows it running until
    /// the next start of lastmile completes it.
    #[error(
        "deployment #{deployment} of {environment} put all traffic on {release}, but the store could not record that it finished: {cause}; the next start of lastmile (`lastmile restart`, or a restart of `lastmile server`) records it"
    )]
    Unrecorded {
        /// The deployment.
        deployment: i64,
        /// Its environment.
        environment: String,
        /// The release now serving, labelled.
        release: String,
        /// Why the store failed (in the message, so not a `source`).
        cause: Box<StoreError>,
    },
}

/// What `restore` brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// `(environment, release)` serving again.
    pub serving: Vec<(String, String)>,
    /// `(environment, deployment)`: canaries to continue with [`Engine::resume`].
    pub resumable: Vec<(String, i64)>,
}

/// The deployment engine.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    hosts: Vec<Arc<dyn HostHandle>>,
    actor: String,
    /// Promote/abort signals of the canaries running now, by environment.
    controls: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<CanaryControl>>>>,
    /// The address each environment's route listens on, as the first host
    /// answered `set_route` (port 0 in the spec becomes the bound one).
    listening: Arc<std::sync::Mutex<std::collections::HashMap<String, SocketAddr>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Engine")
            .field("hosts", &self.hosts)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// A deployment being driven: its row and the environment it moves.
pub(crate) struct Drive<'a> {
    engine: &'a Engine,
    pub(crate) record: DeploymentRecord,
    pub(crate) environment: &'a Environment,
    pub(crate) route: RouteTemplate,
    pub(crate) progress: &'a dyn Progress,
    started: Instant,
    /// Set when all traffic is on the new release.
    switched_after_ms: std::sync::Mutex<Option<u64>>,
    /// The service the old release runs, to bring its set back to size
    /// when the deployment fails.
    from_service: Option<Service>,
    /// The analysis of the last canary decision, as its event recorded it:
    /// stored with the deployment's end, so the numbers behind an abort
    /// stay with the deployment.
    last_analysis: std::sync::Mutex<Option<serde_json::Value>>,
}

impl<'a> Drive<'a> {
    fn new(
        engine: &'a Engine,
        record: DeploymentRecord,
        environment: &'a Environment,
        route: RouteTemplate,
        progress: &'a dyn Progress,
        from_service: Option<Service>,
    ) -> Drive<'a> {
        Drive {
            engine,
            record,
            environment,
            route,
            progress,
            started: Instant::now(),
            switched_after_ms: std::sync::Mutex::new(None),
            from_service,
            last_analysis: std::sync::Mutex::new(None),
        }
    }
}

/// The parts of a route that do not change during a deployment.
#[derive(Clone)]
pub(crate) struct RouteTemplate {
    environment: String,
    listen: std::net::SocketAddr,
    host: Option<String>,
    path_prefix: String,
    edge: lastmile_host::EdgeSpec,
    /// Canary environments leave each new instance's warm-up out of the
    /// latency they judge; other strategies judge no latency and keep it in.
    warmup: lastmile_host::WarmupRule,
}

impl RouteTemplate {
    pub(crate) fn with(&self, weights: Vec<(String, u32)>) -> RouteSpec {
        RouteSpec {
            edge: self.edge.clone(),
            warmup: self.warmup,
            ..RouteSpec::weighted(
                &self.environment,
                self.listen,
                self.host.clone(),
                &self.path_prefix,
                weights,
            )
        }
    }
}

/// A failure inside a strategy, with the failing instance's output.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) last_lines: Vec<String>,
    /// The canary was aborted: traffic is already back on stable.
    pub(crate) aborted: bool,
}

impl Failure {
    /// A failure that is only a message: no instance output, not aborted.
    pub(crate) fn message(message: String) -> Failure {
        Failure {
            message,
            last_lines: Vec::new(),
            aborted: false,
        }
    }

    pub(crate) fn aborted(reason: &str) -> Failure {
        Failure {
            message: format!("canary aborted: {reason}"),
            last_lines: Vec::new(),
            aborted: true,
        }
    }
}

impl From<HostError> for Failure {
    fn from(error: HostError) -> Failure {
        let last_lines = match &error {
            HostError::NotReady { last_lines, .. } => last_lines.clone(),
            _ => Vec::new(),
        };
        Failure {
            message: error.to_string(),
            last_lines,
            aborted: false,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::message(error.to_string())
    }
}

impl Engine {
    /// An engine over `hosts`, recording in `store`.
    pub fn new(store: Arc<dyn Store>, hosts: Vec<Arc<dyn HostHandle>>) -> Engine {
        Engine {
            store,
            hosts,
            actor: "lastmile".to_string(),
            controls: Arc::default(),
            listening: Arc::default(),
        }
    }

    /// The address `environment`'s route listens on, once a deployment or
    /// a restore set it.
    pub fn listening(&self, environment: &str) -> Option<SocketAddr> {
        self.listening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(environment)
            .copied()
    }

    /// Sets `route` on every host, remembering where the first one listens.
    pub(crate) async fn set_route(&self, route: &RouteSpec) -> Result<(), HostError> {
        for (index, host) in self.hosts.iter().enumerate() {
            let bound = host.set_route(route).await?;
            if index == 0 {
                self.listening
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(route.environment.clone(), bound);
            }
        }
        Ok(())
    }

    /// `lastmile promote ENV`: resumes a paused canary, or skips its
    /// remaining steps.
    pub fn promote(&self, environment: &str) -> Result<(), EngineError> {
        self.control(environment)?.promote();
        Ok(())
    }

    /// `lastmile abort ENV`: all traffic back to stable, the canary fails.
    pub fn abort(&self, environment: &str) -> Result<(), EngineError> {
        self.control(environment)?.abort();
        Ok(())
    }

    /// Freezes every running canary for a handover; returns how many.
    pub fn suspend_canaries(&self) -> usize {
        let controls = self
            .controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for control in controls.values() {
            control.suspend();
        }
        controls.len()
    }

    /// Lets suspended canaries go on (the handover failed).
    pub fn unsuspend_canaries(&self) {
        for control in self
            .controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            control.unsuspend();
        }
    }

    fn control(&self, environment: &str) -> Result<Arc<CanaryControl>, EngineError> {
        self.controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(environment)
            .cloned()
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "no canary is running in environment `{environment}`, so there is none to promote or abort"
                ))
            })
    }

    /// Who deployments are recorded as started by.
    pub fn with_actor(mut self, actor: &str) -> Engine {
        self.actor = actor.to_string();
        self
    }

    /// Deploys `release` to `environment` with the environment's strategy,
    /// to the end. A release that fails to start leaves traffic on the old
    /// release and returns a `failed` outcome with the instance's output.
    pub async fn deploy(
        &self,
        environment: &Environment,
        service: &Service,
        release: &ReleaseRecord,
        service_of: &ServiceOf<'_>,
        progress: &dyn Progress,
    ) -> Result<DeploymentOutcome, EngineError> {
        let route = route_template(environment)?;
        let state = self.store.get_environment(&environment.name)?;
        let from = state
            .as_ref()
            .and_then(|state| state.current_release.clone());
        let kind = DeploymentKind::of(&environment.strategy);
        if from.as_deref() == Some(release.id.as_str()) {
            progress.step(&crate::unchanged_line(&environment.name, &release.label()));
            return Ok(DeploymentOutcome {
                deployment: None,
                noop: true,
                environment: environment.name.clone(),
                status: DeploymentStatus::Succeeded,
                from_release: from.clone(),
                from_version: Some(release.version.clone()),
                to_release: release.id.clone(),
                to_version: release.version.clone(),
                duration_ms: 0,
                switched_after_ms: None,
                error: None,
                analysis: None,
                last_lines: Vec::new(),
                aborted: false,
            });
        }
        let record = self.store.begin_deployment(
            &environment.name,
            from.as_deref(),
            &release.id,
            kind,
            &self.actor,
        )?;
        let from_release = match &from {
            Some(id) => self.store.get_release(id)?,
            None => None,
        };
        let drive = Drive::new(
            self,
            record,
            environment,
            route,
            progress,
            from_release
                .as_ref()
                .and_then(|release| service_of(release).ok()),
        );
        drive.notify("started", release, from_release.as_ref(), None, None);
        if let Err(failure) = drive.before_webhook(release, from_release.as_ref()).await {
            return drive
                .finish(Err(failure), from_release.as_ref(), release)
                .await;
        }
        let result = match &environment.strategy {
            Strategy::Rolling { batch, max_surge } => {
                drive
                    .rolling(from_release.as_ref(), release, service, *batch, *max_surge)
                    .await
            }
            Strategy::BlueGreen { rollback_window } => {
                drive
                    .blue_green(from_release.as_ref(), release, service, *rollback_window)
                    .await
            }
            Strategy::Recreate => {
                drive
                    .recreate(from_release.as_ref(), release, service)
                    .await
            }
            Strategy::Canary(canary) => {
                let control = Arc::new(CanaryControl::default());
                self.controls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(environment.name.clone(), control.clone());
                let result = drive
                    .canary(from_release.as_ref(), release, service, canary, &control)
                    .await;
                self.controls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&environment.name);
                result
            }
        };
        let outcome = drive.finish(result, from_release.as_ref(), release).await?;
        drive
            .announce(&outcome, release, from_release.as_ref())
            .await;
        Ok(outcome)
    }

    /// Moves `environment` back to `target` (default: the release it served
    /// before). A target whose instances are still warm takes all traffic
    /// at once; otherwise it is started with the environment's strategy.
    pub async fn rollback(
        &self,
        environment: &Environment,
        target: Option<&ReleaseRecord>,
        service_of: &ServiceOf<'_>,
        progress: &dyn Progress,
    ) -> Result<DeploymentOutcome, EngineError> {
        let route = route_template(environment)?;
        let state = self
            .store
            .get_environment(&environment.name)?
            .ok_or_else(|| {
                EngineError::Conflict(format!(
                    "environment `{}` has never been deployed, so there is nothing to roll back",
                    environment.name
                ))
            })?;
        let target = match target {
            Some(release) => release.clone(),
            None => {
                let previous = state.previous_release.clone().ok_or_else(|| {
                    EngineError::Conflict(format!(
                        "environment `{}` has no previous release to roll back to; name one with --to",
                        environment.name
                    ))
                })?;
                self.store.get_release(&previous)?.ok_or_else(|| {
                    EngineError::Invalid(format!("release {previous} is not in the store"))
                })?
            }
        };
        if state.current_release.as_deref() == Some(target.id.as_str()) {
            return Err(EngineError::Conflict(format!(
                "environment `{}` already serves {}",
                environment.name,
                target.label()
            )));
        }
        let service = service_of(&target).map_err(EngineError::Invalid)?;
        let from = state.current_release.clone();
        let record = self.store.begin_deployment(
            &environment.name,
            from.as_deref(),
            &target.id,
            DeploymentKind::Rollback,
            &self.actor,
        )?;
        let from_release = match &from {
            Some(id) => self.store.get_release(id)?,
            None => None,
        };
        let drive = Drive::new(
            self,
            record,
            environment,
            route,
            progress,
            from_release
                .as_ref()
                .and_then(|release| service_of(release).ok()),
        );
        let result = drive
            .rollback(from_release.as_ref(), &target, &service)
            .await;
        let outcome = drive.finish(result, from_release.as_ref(), &target).await?;
        drive
            .announce(&outcome, &target, from_release.as_ref())
            .await;
        Ok(outcome)
    }

    /// After a restart: settles deployments the previous process left
    /// running, then starts what each environment serves and routes to it.
    /// Returns `(environment, release)` for each environment brought back.
    pub async fn restore(
        &self,
        environments: &[Environment],
        service_of: &ServiceOf<'_>,
        progress: &dyn Progress,
    ) -> Result<Restored, EngineError> {
        let mut restored = Restored::default();
        for environment in environments {
            let Some(mut state) = self.store.get_environment(&environment.name)? else {
                if let Some(running) = self.store.running_deployment(&environment.name)? {
                    self.store.finish_deployment(
                        running.id,
                        DeploymentStatus::Failed,
                        Some("interrupted: lastmile stopped before the first release served"),
                        None,
                        None,
                    )?;
                }
                continue;
            };
            let running = self.store.running_deployment(&environment.name)?;
            if let Some(running) = &running
                && let Strategy::Canary(canary) = &environment.strategy
                && running.strategy == DeploymentKind::Canary
                && running.phase.is_canary_step()
                && let Some(from) = &running.from_release
            {
                self.restore_canary(
                    environment,
                    canary,
                    running,
                    from,
                    &state,
                    service_of,
                    progress,
                )
                .await?;
                restored
                    .serving
                    .push((environment.name.clone(), from.clone()));
                restored
                    .resumable
                    .push((environment.name.clone(), running.id));
                continue;
            }
            if let Some(running) = running {
                let (status, message) = if running.phase == Phase::Switched {
                    // The switch was written, so it was decided: complete it,
                    // as what it was.
                    (running.strategy.completed_status(), None)
                } else {
                    state = EnvironmentState {
                        name: environment.name.clone(),
                        current_release: running.from_release.clone(),
                        previous_release: state
                            .previous_release
                            .filter(|previous| Some(previous) != running.from_release.as_ref()),
                        weights: running
                            .from_release
                            .iter()
                            .map(|release| (release.clone(), 100))
                            .collect(),
                        warm_until: None,
                    };
                    (
                        DeploymentStatus::Failed,
                        Some(
                            "interrupted: lastmile stopped mid-deployment; rolled back to the release it replaced",
                        ),
                    )
                };
                let final_state = EnvironmentState {
                    weights: state
                        .current_release
                        .iter()
                        .map(|release| (release.clone(), 100))
                        .collect(),
                    warm_until: None,
                    ..state.clone()
                };
                self.store.finish_deployment(
                    running.id,
                    status,
                    message,
                    None,
                    Some(&final_state),
                )?;
                progress.step(&format!(
                    "deployment #{} of {} was interrupted: {}",
                    running.id,
                    environment.name,
                    if status != DeploymentStatus::Failed {
                        "its switch had been made, so it is completed"
                    } else {
                        "rolled back to the release it replaced"
                    }
                ));
                state = final_state;
            }
            let Some(current) = state.current_release.clone() else {
                continue;
            };
            let Some(release) = self.store.get_release(&current)? else {
                continue;
            };
            let service = service_of(&release).map_err(EngineError::Invalid)?;
            let route = route_template(environment)?;
            let record = DeploymentRecord {
                id: 0,
                environment: environment.name.clone(),
                from_release: None,
                to_release: current.clone(),
                strategy: DeploymentKind::Restore,
                status: DeploymentStatus::Running,
                phase: Phase::Restore,
                started_at: 0,
                finished_at: None,
                reason: None,
                analysis: None,
            };
            let drive = Drive::new(self, record, environment, route.clone(), progress, None);
            drive
                .ensure_everywhere(&release)
                .await
                .map_err(|failure| EngineError::Invalid(failure.message))?;
            drive
                .scale(&release, &service, environment.instances)
                .await
                .map_err(|failure| EngineError::Invalid(failure.message))?;
            let weights = vec![(current.clone(), 100)];
            self.store.put_environment(&EnvironmentState {
                weights: weights.clone(),
                warm_until: None,
                ..state
            })?;
            drive
                .route_everywhere(weights)
                .await
                .map_err(|failure| EngineError::Invalid(failure.message))?;
            restored.serving.push((environment.name.clone(), current));
        }
        Ok(restored)
    }

    /// Brings a canary the previous process was running back as it was:
    /// both sets started, the weights it had written routed again.
    #[allow(clippy::too_many_arguments)]
    async fn restore_canary(
        &self,
        environment: &Environment,
        canary: &lastmile_spec::Canary,
        running: &DeploymentRecord,
        from: &str,
        state: &EnvironmentState,
        service_of: &ServiceOf<'_>,
        progress: &dyn Progress,
    ) -> Result<(), EngineError> {
        let missing = |id: &str| EngineError::Invalid(format!("release {id} is not in the store"));
        let stable = self.store.get_release(from)?.ok_or_else(|| missing(from))?;
        let to = self
            .store
            .get_release(&running.to_release)?
            .ok_or_else(|| missing(&running.to_release))?;
        let drive = Drive::new(
            self,
            running.clone(),
            environment,
            route_template(environment)?,
            progress,
            None,
        );
        let count = environment.instances.max(1);
        for release in [&stable, &to] {
            let service = service_of(release).map_err(EngineError::Invalid)?;
            drive
                .ensure_everywhere(release)
                .await
                .map_err(|failure| EngineError::Invalid(failure.message))?;
            drive
                .scale(release, &service, count)
                .await
                .map_err(|failure| EngineError::Invalid(failure.message))?;
        }
        let total: u32 = state.weights.iter().map(|(_, weight)| *weight).sum();
        let canary_units = state
            .weights
            .iter()
            .find(|(release, _)| release == &to.id)
            .map_or(0, |(_, weight)| *weight);
        let percent = if total == 0 {
            0.0
        } else {
            f64::from(canary_units) * 100.0 / f64::from(total)
        };
        let mirror = (running.phase == Phase::Dark)
            .then_some(canary.mirror.as_ref())
            .flatten()
            .map(|mirror| lastmile_host::MirrorRule {
                release: to.id.clone(),
                percent: mirror.percent,
                methods: mirror.methods.clone(),
            });
        let route = drive.canary_route(&stable, &to, percent, mirror);
        self.set_route(&route).await?;
        progress.step(&format!(
            "canary #{} of {} resumes at {} with {percent}% on {}",
            running.id, environment.name, running.phase, to.version
        ));
        Ok(())
    }

    /// Drives a canary that `restore` brought back, from the step it was
    /// at, to the end.
    pub async fn resume(
        &self,
        environment: &Environment,
        deployment: i64,
        service_of: &ServiceOf<'_>,
        progress: &dyn Progress,
    ) -> Result<DeploymentOutcome, EngineError> {
        let Strategy::Canary(canary) = &environment.strategy else {
            return Err(EngineError::Invalid(format!(
                "environment `{}` no longer uses the canary strategy",
                environment.name
            )));
        };
        let record = self
            .store
            .running_deployment(&environment.name)?
            .filter(|record| record.id == deployment)
            .ok_or_else(|| {
                EngineError::Invalid(format!("deployment #{deployment} is not running"))
            })?;
        let missing = |id: &str| EngineError::Invalid(format!("release {id} is not in the store"));
        let from = record
            .from_release
            .clone()
            .ok_or_else(|| missing("(none)"))?;
        let stable = self
            .store
            .get_release(&from)?
            .ok_or_else(|| missing(&from))?;
        let to = self
            .store
            .get_release(&record.to_release)?
            .ok_or_else(|| missing(&record.to_release))?;
        let first_step = record
            .phase
            .step_number()
            .map_or(0, |number| number.saturating_sub(1));
        let drive = Drive::new(
            self,
            record,
            environment,
            route_template(environment)?,
            progress,
            service_of(&stable).ok(),
        );
        let control = Arc::new(CanaryControl::default());
        self.controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(environment.name.clone(), control.clone());
        // A dark launch had moved no user traffic yet: it starts again.
        let result = if drive.record.phase == Phase::Dark {
            drive
                .dark_launch_then_steps(&stable, &to, canary, &control)
                .await
        } else {
            drive
                .canary_steps(&stable, &to, canary, &control, first_step)
                .await
        };
        self.controls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&environment.name);
        let outcome = drive.finish(result, Some(&stable), &to).await?;
        drive.announce(&outcome, &to, Some(&stable)).await;
        Ok(outcome)
    }

    /// Periodic housekeeping: ends rollback windows that have passed by
    /// stopping the warm previous release.
    pub async fn tick(&self, environments: &[Environment]) -> Result<(), EngineError> {
        for environment in environments {
            let Some(state) = self.store.get_environment(&environment.name)? else {
                continue;
            };
            let Some(until) = state.warm_until else {
                continue;
            };
            if now_millis() < until || self.store.running_deployment(&environment.name)?.is_some() {
                continue;
            }
            let keep: Vec<String> = state.current_release.iter().cloned().collect();
            self.store.put_environment(&EnvironmentState {
                warm_until: None,
                ..state
            })?;
            for host in &self.hosts {
                for instance in env_instances(host.as_ref(), &environment.name).await? {
                    if !keep.contains(&instance.release_id) {
                        host.stop_instance(&instance.instance_id)
                            .await
                            .map_err(|error| EngineError::Invalid(error.to_string()))?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl From<HostError> for EngineError {
    fn from(error: HostError) -> EngineError {
        EngineError::Invalid(error.to_string())
    }
}

/// Unpacked releases kept on each host for an instant rollback.
const KEEP_RELEASES: usize = 5;

impl Drive<'_> {
    pub(crate) fn store(&self) -> &dyn Store {
        self.engine.store.as_ref()
    }

    pub(crate) fn hosts(&self) -> &[Arc<dyn HostHandle>] {
        &self.engine.hosts
    }

    pub(crate) fn engine(&self) -> &Engine {
        self.engine
    }

    pub(crate) fn env_name(&self) -> &str {
        &self.environment.name
    }

    /// Writes a phase (and the environment's new state) before acting.
    pub(crate) fn advance(
        &self,
        phase: &Phase,
        detail: serde_json::Value,
        environment: Option<&EnvironmentState>,
    ) -> Result<(), Failure> {
        if self.record.id == 0 {
            return Ok(());
        }
        self.store()
            .advance_deployment(self.record.id, phase, &detail, environment)?;
        Ok(())
    }

    fn state_with(
        &self,
        current: Option<&ReleaseRecord>,
        previous: Option<&ReleaseRecord>,
        weights: Vec<(String, u32)>,
        warm_until: Option<i64>,
    ) -> EnvironmentState {
        EnvironmentState {
            name: self.env_name().to_string(),
            current_release: current.map(|release| release.id.clone()),
            previous_release: previous.map(|release| release.id.clone()),
            weights,
            warm_until,
        }
    }

    pub(crate) async fn ensure_everywhere(&self, release: &ReleaseRecord) -> Result<(), Failure> {
        let reference = release_ref(release);
        for host in self.hosts() {
            host.ensure_release(&reference).await?;
        }
        Ok(())
    }

    async fn route_everywhere(&self, weights: Vec<(String, u32)>) -> Result<(), Failure> {
        let route = self.route.with(weights);
        self.engine.set_route(&route).await?;
        Ok(())
    }

    /// Live instances of `release` in this environment on `host`.
    async fn live(
        &self,
        host: &dyn HostHandle,
        release: &str,
    ) -> Result<Vec<InstanceInfo>, Failure> {
        Ok(env_instances(host, self.env_name())
            .await?
            .into_iter()
            .filter(|instance| instance.release_id == release)
            .collect())
    }

    /// Starts instances of `release` with the given indexes on one host,
    /// all at once, and waits until every one is ready.
    async fn start_on(
        &self,
        host: &Arc<dyn HostHandle>,
        release: &ReleaseRecord,
        service: &Service,
        indexes: &[u32],
    ) -> Result<(), Failure> {
        let mut starting = tokio::task::JoinSet::new();
        for &index in indexes {
            let host = host.clone();
            let spec = instance_spec(self.env_name(), release, service, index);
            starting.spawn(async move { host.start_instance(&spec).await });
        }
        let mut first_failure = None;
        while let Some(joined) = starting.join_next().await {
            match joined {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    first_failure.get_or_insert(Failure::from(error));
                }
                Err(error) => {
                    first_failure.get_or_insert(Failure::message(format!(
                        "starting an instance panicked: {error}"
                    )));
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Makes `count` instances of `release` run on every host.
    pub(crate) async fn scale(
        &self,
        release: &ReleaseRecord,
        service: &Service,
        count: u32,
    ) -> Result<(), Failure> {
        for host in self.hosts() {
            let live = self.live(host.as_ref(), &release.id).await?;
            let missing: Vec<u32> = (0..count)
                .filter(|index| !live.iter().any(|instance| instance.index == *index))
                .collect();
            if !missing.is_empty() {
                self.progress.step(&format!(
                    "starting {} of {} on {}",
                    lastmile_store::counted(missing.len() as u64, "instance"),
                    release.version,
                    host.name()
                ));
                self.start_on(host, release, service, &missing).await?;
            }
        }
        Ok(())
    }

    /// Stops every instance of this environment whose release is not in
    /// `keep`.
    pub(crate) async fn stop_others(&self, keep: &[&str]) -> Result<(), Failure> {
        let mut stopping = tokio::task::JoinSet::new();
        for host in self.hosts() {
            for instance in env_instances(host.as_ref(), self.env_name()).await? {
                if !keep.contains(&instance.release_id.as_str()) {
                    let host = host.clone();
                    stopping.spawn(async move {
                        let started = Instant::now();
                        host.stop_instance(&instance.instance_id)
                            .await
                            .map(|()| (instance.instance_id, started.elapsed()))
                    });
                }
            }
        }
        let mut first_failure = None;
        while let Some(joined) = stopping.join_next().await {
            match joined {
                Ok(Ok((instance_id, took))) => self.progress.step(&format!(
                    "stopped {instance_id} (drained and stopped in {} ms)",
                    took.as_millis()
                )),
                Ok(Err(error)) => {
                    first_failure.get_or_insert(Failure::from(error));
                }
                Err(error) => {
                    first_failure.get_or_insert(Failure::message(format!(
                        "stopping an instance panicked: {error}"
                    )));
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// `rolling`: new instances in batches, each ready before old ones of
    /// the same number leave; weights follow the instance counts.
    async fn rolling(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        service: &Service,
        batch: u32,
        max_surge: u32,
    ) -> Result<(), Failure> {
        self.ensure_everywhere(to).await?;
        let total = self.environment.instances.max(1);
        let step = batch.max(1).min(total);
        let surge = max_surge.max(1).min(step);
        let mut new_count = 0u32;
        let mut old_count = match from {
            Some(from) => {
                let mut live = u32::MAX;
                for host in self.hosts() {
                    let count = self.live(host.as_ref(), &from.id).await?.len() as u32;
                    live = live.min(count);
                }
                if live == u32::MAX { 0 } else { live }
            }
            None => 0,
        };
        let mut round = 0usize;
        while new_count < total {
            round += 1;
            // Surge: start up to `surge` new instances, all ready before any
            // old one leaves.
            let starting = surge.min(total - new_count);
            let indexes: Vec<u32> = (new_count..new_count + starting).collect();
            self.advance(
                &Phase::BatchStarting(round),
                json!({ "release": to.id, "indexes": indexes }),
                None,
            )?;
            for host in self.hosts() {
                self.start_on(host, to, service, &indexes).await?;
            }
            self.verify(to).await?;
            new_count += starting;
            let retiring = starting.min(old_count);
            old_count -= retiring;
            let weights = mixed_weights(from, old_count, to, new_count);
            // The old release stays current until the last batch: a crash
            // mid-roll restores it.
            let state = EnvironmentState {
                name: self.env_name().to_string(),
                current_release: Some(from.unwrap_or(to).id.clone()),
                previous_release: self
                    .store()
                    .get_environment(self.env_name())?
                    .and_then(|state| state.previous_release),
                weights: weights.clone(),
                warm_until: None,
            };
            self.advance(
                &Phase::BatchRouted(round),
                json!({ "weights": weights }),
                Some(&state),
            )?;
            self.route_everywhere(weights).await?;
            self.progress.step(&format!(
                "batch {round}: {new_count}/{total} instances on {}",
                to.version
            ));
            if let Some(from) = from {
                for host in self.hosts() {
                    let mut live = self.live(host.as_ref(), &from.id).await?;
                    live.sort_by_key(|instance| std::cmp::Reverse(instance.index));
                    let excess = live.len().saturating_sub(old_count as usize);
                    for instance in live.into_iter().take(excess) {
                        host.stop_instance(&instance.instance_id).await?;
                    }
                }
            }
        }
        self.switch(from, to, None).await?;
        self.stop_others(&[to.id.as_str()]).await
    }

    /// `blue-green`: the whole new set, verified ready, then one atomic
    /// switch; the old set stays warm through the rollback window.
    async fn blue_green(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        service: &Service,
        rollback_window: Duration,
    ) -> Result<(), Failure> {
        self.ensure_everywhere(to).await?;
        self.advance(&Phase::Starting, json!({ "release": to.id }), None)?;
        self.scale(to, service, self.environment.instances.max(1))
            .await?;
        self.verify(to).await?;
        let warm_until = from.map(|_| now_millis() + millis(rollback_window));
        self.switch(from, to, warm_until).await?;
        let mut keep = vec![to.id.as_str()];
        if let Some(from) = from {
            keep.push(from.id.as_str());
            self.progress.step(&format!(
                "{} stays warm for {} for an instant rollback",
                from.version,
                human(rollback_window)
            ));
        }
        self.stop_others(&keep).await
    }

    /// `recreate`: stop the old set, then start the new one.
    async fn recreate(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        service: &Service,
    ) -> Result<(), Failure> {
        self.ensure_everywhere(to).await?;
        let state = self.state_with(Some(to), from, vec![(to.id.clone(), 100)], None);
        self.advance(
            &Phase::Switched,
            json!({ "weights": state.weights }),
            Some(&state),
        )?;
        self.route_everywhere(state.weights.clone()).await?;
        self.stop_others(&[to.id.as_str()]).await?;
        self.scale(to, service, self.environment.instances.max(1))
            .await
    }

    /// A rollback: instant when the target is warm, else a start of the
    /// full target set first.
    async fn rollback(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        service: &Service,
    ) -> Result<(), Failure> {
        self.ensure_everywhere(to).await?;
        self.scale(to, service, self.environment.instances.max(1))
            .await?;
        self.switch(from, to, None).await?;
        self.stop_others(&[to.id.as_str()]).await
    }

    /// Runs the environment's `gates.verify` checks against every instance
    /// of `release`, directly, before it gets traffic.
    pub(crate) async fn verify(&self, release: &ReleaseRecord) -> Result<(), Failure> {
        let checks = &self.environment.gates.verify;
        if checks.is_empty() {
            return Ok(());
        }
        for host in self.hosts() {
            for instance in self.live(host.as_ref(), &release.id).await? {
                for check in checks {
                    verify_one(host.as_ref(), &instance.instance_id, check).await?;
                }
            }
        }
        self.progress.step(&format!(
            "{} passed {}",
            release.version,
            lastmile_store::counted(checks.len() as u64, "verification check")
        ));
        Ok(())
    }

    /// Deletes unpacked releases on every host beyond the newest few, never
    /// the ones serving or kept for rollback. Best effort.
    async fn prune(&self, from: Option<&ReleaseRecord>, to: &ReleaseRecord) {
        let mut keep: Vec<String> = self
            .store()
            .list_releases(KEEP_RELEASES)
            .map(|releases| releases.into_iter().map(|release| release.id).collect())
            .unwrap_or_default();
        keep.extend(from.map(|from| from.id.clone()));
        keep.push(to.id.clone());
        keep.sort();
        keep.dedup();
        for host in self.hosts() {
            if let Err(error) = host.prune_releases(&keep).await {
                self.progress.step(&format!(
                    "could not prune old releases on {}: {error}",
                    host.name()
                ));
            }
        }
    }

    /// Sends a notification to the environment's `notify` targets (in the
    /// background) and records whether each was delivered.
    pub(crate) fn notify(
        &self,
        event: &'static str,
        release: &ReleaseRecord,
        from: Option<&ReleaseRecord>,
        percent: Option<f64>,
        reason: Option<&str>,
    ) {
        if self.environment.notify.is_empty() || self.record.id == 0 {
            return;
        }
        let notification = Notification {
            event,
            environment: self.env_name().to_string(),
            release: release.id.clone(),
            version: release.version.clone(),
            from: from.map(|from| from.id.clone()),
            percent,
            reason: reason.map(str::to_string),
            deployment: self.record.id,
        };
        let store = self.engine.store.clone();
        let subject = format!("deployment/{}", self.record.id);
        webhook::send(
            &self.environment.notify,
            notification,
            move |url, result| {
                let (kind, error) = match result {
                    Ok(()) => ("notification.sent", None),
                    Err(error) => ("notification.failed", Some(error)),
                };
                let _ = store.record_event(
                    kind,
                    &subject,
                    "lastmile",
                    &json!({ "url": url, "event": event, "error": error }),
                );
            },
        );
    }

    fn hook_payload(
        &self,
        hook: &str,
        release: &ReleaseRecord,
        from: Option<&ReleaseRecord>,
    ) -> serde_json::Value {
        json!({
            "hook": hook,
            "environment": self.env_name(),
            "deployment": self.record.id,
            "release": release.id,
            "version": release.version,
            "from": from.map(|from| &from.id),
            "strategy": self.record.strategy,
        })
    }

    /// `gates.webhooks.before`: must answer 2xx for the deployment to start.
    async fn before_webhook(
        &self,
        release: &ReleaseRecord,
        from: Option<&ReleaseRecord>,
    ) -> Result<(), Failure> {
        let Some(hook) = &self.environment.gates.webhooks.before else {
            return Ok(());
        };
        let payload = self.hook_payload("before", release, from);
        webhook::post_json(&hook.url, &payload, hook.timeout)
            .await
            .map(|_| ())
            .map_err(|error| {
                Failure::message(format!(
                    "the `before` webhook refused the deployment: {error}"
                ))
            })
    }

    /// After the end: notifications, and the `after` or `rollback` webhook
    /// (their failures are recorded, the outcome stands).
    async fn announce(
        &self,
        outcome: &DeploymentOutcome,
        release: &ReleaseRecord,
        from: Option<&ReleaseRecord>,
    ) {
        let event = match outcome.status {
            DeploymentStatus::Succeeded if self.record.strategy == DeploymentKind::Canary => {
                "promoted"
            }
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::RolledBack => "rolled-back",
            DeploymentStatus::Failed if outcome.aborted => "aborted",
            DeploymentStatus::Failed | DeploymentStatus::Running => "failed",
        };
        self.notify(event, release, from, None, outcome.error.as_deref());
        let webhooks = &self.environment.gates.webhooks;
        let (name, hook) = match outcome.status {
            DeploymentStatus::Succeeded => ("after", webhooks.after.as_ref()),
            _ => ("rollback", webhooks.rollback.as_ref()),
        };
        let Some(hook) = hook else {
            return;
        };
        let mut payload = self.hook_payload(name, release, from);
        payload["status"] = json!(outcome.status);
        payload["error"] = json!(outcome.error);
        let result = webhook::post_json(&hook.url, &payload, hook.timeout).await;
        let _ = self.store().record_event(
            if result.is_ok() {
                "webhook.sent"
            } else {
                "webhook.failed"
            },
            &format!("deployment/{}", self.record.id),
            "lastmile",
            &json!({ "hook": name, "url": hook.url, "error": result.err() }),
        );
    }

    /// Writes, then applies, "all traffic on `to`".
    pub(crate) async fn switch(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        warm_until: Option<i64>,
    ) -> Result<(), Failure> {
        let weights = vec![(to.id.clone(), 100)];
        let previous = from.filter(|from| from.id != to.id);
        let state = self.state_with(Some(to), previous, weights.clone(), warm_until);
        self.advance(
            &Phase::Switched,
            json!({ "weights": weights }),
            Some(&state),
        )?;
        self.route_everywhere(weights).await?;
        *self
            .switched_after_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(elapsed_ms(self.started));
        self.progress
            .step(&format!("all traffic on {}", to.label()));
        Ok(())
    }

    /// Records how the deployment ended. On failure traffic goes back to
    /// the old release (written first), the old set is brought back to
    /// full size, and the new release's instances are stopped.
    async fn finish(
        &self,
        result: Result<(), Failure>,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
    ) -> Result<DeploymentOutcome, EngineError> {
        let analysis = self.last_analysis();
        let (status, error, last_lines, aborted) = match result {
            Ok(()) => {
                let status = self.record.strategy.completed_status();
                // A deployment the store did not see end is not reported as
                // succeeded (nor announced). Its switch was written, so
                // `restore` completes it at the next start.
                self.store()
                    .get_environment(self.env_name())
                    .and_then(|state| {
                        self.store().finish_deployment(
                            self.record.id,
                            status,
                            None,
                            analysis.as_ref(),
                            state.as_ref(),
                        )
                    })
                    .map_err(|cause| EngineError::Unrecorded {
                        deployment: self.record.id,
                        environment: self.env_name().to_string(),
                        release: to.label(),
                        cause: Box::new(cause),
                    })?;
                self.prune(from, to).await;
                (status, None, Vec::new(), false)
            }
            Err(failure) => {
                if !failure.aborted {
                    self.progress.step(&format!("failed: {}", failure.message));
                }
                let recovery = self
                    .recover(from, to, &failure.message, analysis.as_ref())
                    .await;
                let message = match recovery {
                    Ok(()) => failure.message,
                    Err(recovery) => format!(
                        "{}; then restoring the previous release failed too: {}",
                        failure.message, recovery.message
                    ),
                };
                (
                    DeploymentStatus::Failed,
                    Some(message),
                    failure.last_lines,
                    failure.aborted,
                )
            }
        };
        Ok(DeploymentOutcome {
            deployment: Some(self.record.id),
            noop: false,
            environment: self.env_name().to_string(),
            status,
            from_release: from.map(|release| release.id.clone()),
            from_version: from.map(|release| release.version.clone()),
            to_release: to.id.clone(),
            to_version: to.version.clone(),
            duration_ms: elapsed_ms(self.started),
            switched_after_ms: *self
                .switched_after_ms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            error,
            analysis,
            last_lines,
            aborted,
        })
    }

    /// Notes the analysis of a canary decision, for the deployment's end.
    pub(crate) fn note_analysis(&self, analysis: serde_json::Value) {
        *self
            .last_analysis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(analysis);
    }

    fn last_analysis(&self) -> Option<serde_json::Value> {
        self.last_analysis
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts traffic back on `from` after a failure, recording the failure
    /// (its reason and the last analysis) with the environment's restored
    /// state first.
    async fn recover(
        &self,
        from: Option<&ReleaseRecord>,
        to: &ReleaseRecord,
        reason: &str,
        analysis: Option<&serde_json::Value>,
    ) -> Result<(), Failure> {
        let previous = self
            .store()
            .get_environment(self.env_name())?
            .and_then(|state| state.previous_release)
            .filter(|previous| Some(previous) != from.map(|from| &from.id));
        let weights: Vec<(String, u32)> = from.iter().map(|from| (from.id.clone(), 100)).collect();
        let state = EnvironmentState {
            name: self.env_name().to_string(),
            current_release: from.map(|from| from.id.clone()),
            previous_release: previous,
            weights: weights.clone(),
            warm_until: None,
        };
        // Written first, with why: a crash from here on restores the old
        // release, and the reason and numbers are already with the record.
        self.store().finish_deployment(
            self.record.id,
            DeploymentStatus::Failed,
            Some(reason),
            analysis,
            Some(&state),
        )?;
        // A rolling deployment may have shrunk the old set: bring it back to
        // size first (its remaining instances serve meanwhile), then route
        // all traffic to it.
        if let (Some(from), Some(service)) = (from, &self.from_service)
            && from.id != to.id
        {
            self.scale(from, service, self.environment.instances.max(1))
                .await?;
        }
        self.route_everywhere(weights).await?;
        let keep: Vec<&str> = from.iter().map(|from| from.id.as_str()).collect();
        if keep.is_empty() || keep[0] != to.id {
            for host in self.hosts() {
                for instance in self.live(host.as_ref(), &to.id).await? {
                    host.stop_instance(&instance.instance_id).await?;
                }
            }
        }
        Ok(())
    }
}

/// One `gates.verify` check against one instance.
async fn verify_one(
    host: &dyn HostHandle,
    instance_id: &str,
    check: &lastmile_spec::VerifyCheck,
) -> Result<(), Failure> {
    let failed = |message: String, last_lines: Vec<String>| Failure {
        message: format!("verification failed: {message}"),
        last_lines,
        aborted: false,
    };
    if let Some(command) = &check.run {
        let outcome = host.run_check(instance_id, command, check.timeout).await?;
        return match outcome.exit_code {
            Some(0) => Ok(()),
            Some(code) => Err(failed(
                format!("`{command}` against instance {instance_id} exited with status {code}"),
                outcome.last_lines,
            )),
            None => Err(failed(
                format!(
                    "`{command}` against instance {instance_id} did not finish within {:?}",
                    check.timeout
                ),
                outcome.last_lines,
            )),
        };
    }
    let Some(path) = check.path.as_deref() else {
        return Ok(());
    };
    let answer = host.probe(instance_id, path, check.timeout).await?;
    let body_ok = check
        .body_contains
        .as_ref()
        .is_none_or(|wanted| answer.body.contains(wanted.as_str()));
    if answer.status == check.status && body_ok {
        return Ok(());
    }
    Err(failed(
        format!(
            "GET {path} on instance {instance_id} answered {}{}; gates.verify expects {}{}",
            answer.status,
            if body_ok {
                String::new()
            } else {
                format!(
                    " with a body not containing {:?}",
                    check.body_contains.as_deref().unwrap_or_default()
                )
            },
            check.status,
            check
                .body_contains
                .as_ref()
                .map(|wanted| format!(" and a body containing {wanted:?}"))
                .unwrap_or_default(),
        ),
        Vec::new(),
    ))
}

/// Weights during a rolling deployment: each release's share is its count
/// of instances, so every instance gets the same share.
fn mixed_weights(
    from: Option<&ReleaseRecord>,
    old_count: u32,
    to: &ReleaseRecord,
    new_count: u32,
) -> Vec<(String, u32)> {
    let mut weights = Vec::new();
    if let Some(from) = from
        && old_count > 0
        && from.id != to.id
    {
        weights.push((from.id.clone(), old_count));
    }
    weights.push((to.id.clone(), new_count.max(1)));
    weights
}

async fn env_instances(
    host: &dyn HostHandle,
    environment: &str,
) -> Result<Vec<InstanceInfo>, HostError> {
    Ok(host
        .instances()
        .await?
        .into_iter()
        .filter(|instance| {
            instance.belongs_to(environment) && instance.state != InstanceState::Stopped
        })
        .collect())
}

fn route_template(environment: &Environment) -> Result<RouteTemplate, EngineError> {
    let route = environment.route.as_ref().ok_or_else(|| {
        EngineError::Invalid(format!(
            "environment `{}` has no `route`, so traffic has nowhere to arrive: add `route: {{ listen: \"127.0.0.1:8080\" }}`",
            environment.name
        ))
    })?;
    Ok(RouteTemplate {
        environment: environment.name.clone(),
        listen: route.listen,
        host: route.host.clone(),
        path_prefix: route.path_prefix.clone(),
        edge: edge_spec(route),
        warmup: match &environment.strategy {
            Strategy::Canary(canary) => crate::canary::warmup_rule(canary),
            _ => lastmile_host::WarmupRule::default(),
        },
    })
}

/// How the route's listener faces clients, as the host takes it.
pub fn edge_spec(route: &lastmile_spec::Route) -> lastmile_host::EdgeSpec {
    let limits = &route.limits;
    lastmile_host::EdgeSpec {
        tls: route.tls.as_ref().map(|tls| lastmile_host::TlsEdge {
            redirect_from: tls.redirect_from,
            hsts: tls.hsts.map(|hsts| lastmile_host::HstsSpec {
                max_age: hsts.max_age,
                include_subdomains: hsts.include_subdomains,
                preload: hsts.preload,
            }),
        }),
        limits: lastmile_host::LimitsSpec {
            max_body_bytes: limits.max_body,
            max_headers: limits.max_headers,
            max_connections: limits.max_connections,
            max_connections_per_ip: limits.max_connections_per_ip,
            body_timeout: limits.body_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
            rate_limit: limits.rate_limit.map(|rate| lastmile_host::RateLimitSpec {
                per_second: rate.per_second,
                burst: rate.burst,
            }),
        },
    }
}

fn release_ref(release: &ReleaseRecord) -> ReleaseRef {
    ReleaseRef {
        id: release.id.clone(),
        version: release.version.clone(),
        artifact_id: release.artifact_id.clone(),
    }
}

/// Ids from [`lastmile_host::instance_id`]: unique per host, and
/// [`lastmile_host::instance_environment`] tells whose instance it is.
fn instance_spec(
    environment: &str,
    release: &ReleaseRecord,
    service: &Service,
    index: u32,
) -> InstanceSpec {
    InstanceSpec {
        instance_id: lastmile_host::instance_id(
            environment,
            lastmile_store::short_id(&release.id),
            index,
        ),
        environment: environment.to_owned(),
        release: release_ref(release),
        index,
        command: service.run.clone(),
        env: service.env.clone(),
        health: HealthSpec {
            path: service.health.path.clone(),
            interval: service.health.interval,
            timeout: service.health.timeout,
            healthy_threshold: service.health.healthy_threshold,
            unhealthy_threshold: service.health.unhealthy_threshold,
            start_timeout: service.health.start_timeout,
        },
        stop: StopSpec {
            signal: match service.stop.signal {
                lastmile_spec::StopSignal::Sigterm => StopSignal::Term,
                lastmile_spec::StopSignal::Sigint => StopSignal::Int,
                lastmile_spec::StopSignal::Sigquit => StopSignal::Quit,
                lastmile_spec::StopSignal::Sighup => StopSignal::Hup,
                lastmile_spec::StopSignal::Sigusr1 => StopSignal::Usr1,
                lastmile_spec::StopSignal::Sigusr2 => StopSignal::Usr2,
            },
            grace: service.stop.grace,
        },
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn human(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 && seconds.is_multiple_of(60) {
        format!("{}m", seconds / 60)
    } else if seconds > 0 {
        format!("{seconds}s")
    } else {
        format!("{}ms", duration.as_millis())
    }
}
