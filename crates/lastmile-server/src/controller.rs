//! One app's controller: build → release → deploy → status, drift, heal
//! and restore, over the hosts it is given. It holds the hosts only as
//! [`HostHandle`]s: what runs in this process (the `local` host of `lastmile
//! up` and `lastmile server`) is the shell's, in [`crate::local_app`].
//!
//! It answers with typed values ([`StatusReport`], [`DeploymentOutcome`]);
//! JSON is made at the HTTP edge ([`crate::control`], [`crate::api`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lastmile_artifact::BlobStore;
use lastmile_host::{HostHandle, InstanceInfo, ReleaseStats};
use lastmile_rollout::{DeploymentOutcome, Engine, EngineError};
use lastmile_spec::{Environment, Spec};
use lastmile_store::{SqliteStore, Store, StoreError, counted, now_millis};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::report::{
    EnvironmentStatus, LastDeployment, ReleaseStatsRow, StatusReport, WeightShare,
};
use crate::request::{DeployRequest, RollbackRequest};

/// Human progress lines; the binary prints them.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// One line of progress.
    fn line(&self, text: &str);
    /// Something the user should look at.
    fn warn(&self, text: &str);
}

/// The running controller of one app, shared with its APIs.
#[derive(Debug)]
pub struct Controller {
    app: String,
    spec_file: PathBuf,
    spec: Mutex<Spec>,
    state_dir: PathBuf,
    secret_key_file: PathBuf,
    store: Arc<SqliteStore>,
    engine: Engine,
    hosts: Vec<Arc<dyn HostHandle>>,
    /// Certificates of the TLS routes (files, ACME) on every host.
    edge: crate::edge::Edge,
    listen_override: Option<(String, SocketAddr)>,
    /// Where the control API answers, once it does (`status` shows it).
    control_addr: Mutex<Option<SocketAddr>>,
    deploying: tokio::sync::Mutex<()>,
    progress: Arc<dyn Progress>,
    flags: Arc<crate::flags::Flags>,
    secrets: std::sync::OnceLock<SecretLookup>,
}

/// Looks one secret's value up by name.
pub type SecretFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Secret values by name, for the instances of one app.
#[derive(Clone)]
pub struct SecretLookup(pub Arc<SecretFn>);

impl std::fmt::Debug for SecretLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretLookup(..)")
    }
}

/// What a controller for one app is made of, besides its hosts.
pub(crate) struct ControllerOptions {
    pub(crate) spec: Spec,
    pub(crate) spec_file: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// The key that seals the app's secrets and ACME state.
    pub(crate) secret_key_file: PathBuf,
    pub(crate) listen_override: Option<(String, SocketAddr)>,
    pub(crate) secrets: Option<SecretLookup>,
    /// The app's store when the caller already opened it (one connection
    /// per app, not two).
    pub(crate) store: Option<Arc<SqliteStore>>,
}

impl Controller {
    /// The controller of one app over `hosts`, with its own store (opened
    /// in the state directory unless given); no loop runs yet.
    pub(crate) fn new(
        options: ControllerOptions,
        hosts: Vec<Arc<dyn HostHandle>>,
        progress: Arc<dyn Progress>,
    ) -> Result<Arc<Controller>, StoreError> {
        let store = match options.store {
            Some(store) => store,
            None => Arc::new(SqliteStore::open(&options.state_dir)?.0),
        };
        let spec = options.spec;
        let edge = crate::edge::Edge::new(
            hosts.clone(),
            &options.state_dir,
            &options.secret_key_file,
            progress.clone(),
        );
        let engine = Engine::new(store.clone() as Arc<dyn Store>, hosts.clone());
        let (flags, problems) = crate::flags::Flags::new(&spec, store.as_ref());
        for problem in problems {
            progress.warn(&format!("flag override skipped: {problem}"));
        }
        Ok(Arc::new(Controller {
            app: spec.app.clone(),
            spec_file: options.spec_file,
            spec: Mutex::new(spec),
            state_dir: options.state_dir,
            secret_key_file: options.secret_key_file,
            store,
            engine,
            hosts,
            edge,
            listen_override: options.listen_override,
            control_addr: Mutex::new(None),
            deploying: tokio::sync::Mutex::new(()),
            progress,
            flags: Arc::new(flags),
            secrets: options
                .secrets
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
        }))
    }

    /// Where the control API answers, for `status`.
    pub(crate) fn set_control_addr(&self, addr: SocketAddr) {
        *lock(&self.control_addr) = Some(addr);
    }

    /// Progress lines of this app.
    pub(crate) fn progress(&self) -> &Arc<dyn Progress> {
        &self.progress
    }

    /// Where instances' secrets come from, when it was not known at build
    /// time (`lastmile up` makes its API, and so its secrets, after).
    pub(crate) fn set_secrets(&self, lookup: SecretLookup) {
        let _ = self.secrets.set(lookup);
    }

    /// A listener keeps the TLS, redirect and limits it started with: says
    /// so when a deploy to a serving environment changes them.
    fn warn_on_listener_changes(&self, spec: &Spec, env: &Environment) {
        let serving = self
            .store
            .get_environment(&env.name)
            .ok()
            .flatten()
            .is_some_and(|state| state.current_release.is_some());
        let before = lock(&self.spec)
            .environments
            .iter()
            .find(|old| old.name == env.name)
            .and_then(|old| old.route.as_ref())
            .map(lastmile_rollout::edge_spec);
        let after = find_environment(spec, &env.name)
            .ok()
            .and_then(|new| new.route.as_ref())
            .map(lastmile_rollout::edge_spec);
        if serving && before.is_some() && before != after {
            self.progress.warn(&format!(
                "{}: route.tls or route.limits changed; the listener keeps the settings it started with until `lastmile restart` (certificates change now)",
                env.name
            ));
        }
    }

    /// The directory of the spec file: relative paths in the spec start here.
    pub(crate) fn spec_dir(&self) -> &std::path::Path {
        self.spec_file
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."))
    }

    /// The certificates of the TLS routes, for `status` and the dashboard.
    pub fn certificates(&self) -> Vec<crate::edge::CertificateStatus> {
        self.edge.status()
    }

    /// The app's name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// The key file that seals the app's secrets and ACME state.
    pub fn secret_key_file(&self) -> &std::path::Path {
        &self.secret_key_file
    }

    /// Periodic work the engine asks for (stopping warm sets whose
    /// rollback window has passed), every second until aborted.
    pub(crate) async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let specs = self.environment_specs();
            if let Err(error) = self.engine.tick(&specs).await {
                self.progress.warn(&format!("housekeeping: {error}"));
            }
            self.refresh_canary_buckets(&specs);
        }
    }
}

/// Locks a mutex, taking it over from a thread that panicked holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn names(spec: &Spec) -> String {
    let names: Vec<&str> = spec
        .environments
        .iter()
        .map(|env| env.name.as_str())
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Why a release's service cannot be run as it is.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The release's lastmile.yaml no longer parses (rendered errors).
    #[error("{0}")]
    Spec(String),
    /// It has no `service`.
    #[error("the release's lastmile.yaml has no `service`")]
    NoService,
    /// Secrets that `service.secrets` names have no value.
    #[error(
        "no value for secret(s) {names} that service.secrets names: set them with `lastmile secret set {app} NAME`"
    )]
    MissingSecrets {
        /// Their names, comma-separated.
        names: String,
        /// The app.
        app: String,
    },
}

/// Why the releases that were serving could not all be brought back.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A certificate of a TLS route cannot be installed or renewed.
    #[error("{0}")]
    Certificates(String),
    /// The engine could not restore or record.
    #[error("cannot bring back the releases that were serving: {0}")]
    Engine(#[source] EngineError),
}

/// The API's answer to an engine that refused: a request that cannot be
/// carried out as configured is the caller's (400), one the environment's
/// state does not allow now a conflict (409), a failing store the server's.
fn engine_error(error: EngineError) -> ApiError {
    match error {
        EngineError::Conflict(message) => ApiError::conflict(message),
        EngineError::Invalid(message) => ApiError::bad_request(message),
        EngineError::Store(error) => ApiError::internal(&error),
        error @ EngineError::Unrecorded { .. } => ApiError::internal(&error),
    }
}

pub(crate) fn find_environment<'a>(
    spec: &'a Spec,
    name: &str,
) -> Result<&'a Environment, ApiError> {
    spec.environments
        .iter()
        .find(|env| env.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "lastmile.yaml has no environment `{name}`; it has: {}",
                names(spec)
            ))
        })
}

impl Controller {
    /// Environments of the current spec, with the `--listen` override
    /// applied.
    pub(crate) fn environment_specs(&self) -> Vec<Environment> {
        let spec = lock(&self.spec);
        spec.environments
            .iter()
            .map(|env| self.with_override(env.clone()))
            .collect()
    }

    fn with_override(&self, mut env: Environment) -> Environment {
        if let Some((name, addr)) = &self.listen_override {
            if &env.name == name {
                match &mut env.route {
                    Some(route) => route.listen = *addr,
                    None => {
                        env.route = Some(lastmile_spec::Route {
                            listen: *addr,
                            host: None,
                            path_prefix: "/".to_string(),
                            tls: None,
                            limits: lastmile_spec::RouteLimits::default(),
                        })
                    }
                }
            }
        }
        env
    }

    /// Starts again what the store says each environment was serving, as
    /// after a restart (instances die with the process that ran them).
    /// Returns how many canaries resume in the background.
    pub(crate) async fn restore(self: &Arc<Self>) -> Result<usize, RestoreError> {
        let spec = lock(&self.spec).clone();
        // Certificates first: the restored listeners serve HTTPS at once.
        self.edge
            .install(&spec, self.spec_dir())
            .await
            .map_err(|error| RestoreError::Certificates(format!("{error:#}")))?;
        let specs = self.environment_specs();
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release).map_err(|error| error.to_string())
        };
        let restored = self
            .engine
            .restore(&specs, &service_of, &*self.progress_sink())
            .await
            .map_err(RestoreError::Engine)?;
        let mut restored_environments = Vec::new();
        for (environment, release) in restored.serving {
            self.progress.line(&format!(
                "restored {environment}: {}",
                self.release_label(&release)
            ));
            restored_environments.push(environment);
        }
        // Renewal needs the routes (HTTP-01 reaches the redirect listener):
        // an environment not restored starts it at its first deploy.
        let restored_environments: Vec<&str> =
            restored_environments.iter().map(String::as_str).collect();
        self.edge
            .start_renewals(&spec, self.spec_dir(), &restored_environments)
            .map_err(|error| RestoreError::Certificates(format!("{error:#}")))?;
        let resuming = restored.resumable.len();
        for (environment, deployment) in restored.resumable {
            let Some(spec) = specs.iter().find(|spec| spec.name == environment).cloned() else {
                continue;
            };
            let controller = self.clone();
            tokio::spawn(async move {
                let _deploying = controller.deploying.lock().await;
                let service_of = |release: &lastmile_store::ReleaseRecord| {
                    controller
                        .service_of(release)
                        .map_err(|error| error.to_string())
                };
                match controller
                    .engine
                    .resume(&spec, deployment, &service_of, &*controller.progress_sink())
                    .await
                {
                    Ok(outcome) => controller.progress.line(&format!(
                        "resumed canary #{deployment} of {environment} ended: {}{}",
                        serde_json::to_value(outcome.status)
                            .ok()
                            .and_then(|status| status.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        outcome
                            .error
                            .map(|error| format!(" ({error})"))
                            .unwrap_or_default()
                    )),
                    Err(error) => controller
                        .progress
                        .warn(&format!("cannot resume canary #{deployment}: {error}")),
                }
            });
        }
        Ok(resuming)
    }

    /// The service a release runs: from the spec it was built with.
    fn service_of(
        &self,
        release: &lastmile_store::ReleaseRecord,
    ) -> Result<lastmile_spec::Service, ServiceError> {
        let (spec, _) = lastmile_spec::parse("lastmile.yaml", &release.spec_source)
            .map_err(|errors| ServiceError::Spec(errors.render(false)))?;
        let mut service = spec.service.ok_or(ServiceError::NoService)?;
        let mut missing = Vec::new();
        for name in &service.secrets {
            match self.secrets.get().and_then(|lookup| (lookup.0)(name)) {
                Some(value) => {
                    service.env.insert(name.clone(), value);
                }
                None => match std::env::var(name) {
                    Ok(value) => {
                        service.env.insert(name.clone(), value);
                    }
                    Err(_) => missing.push(name.as_str()),
                },
            }
        }
        if !missing.is_empty() {
            return Err(ServiceError::MissingSecrets {
                names: missing.join(", "),
                app: self.app.clone(),
            });
        }
        Ok(service)
    }

    /// The release a deploy request names (made from its artifact when it
    /// carries one; the newest when it names none), without deploying it.
    pub(crate) fn release_for(
        &self,
        request: &DeployRequest,
        spec: &Spec,
        source: &str,
    ) -> Result<lastmile_store::ReleaseRecord, ApiError> {
        match (&request.artifact, &request.release) {
            (Some(artifact), _) => self
                .store
                .create_release(&spec.app, &artifact.id, Some(artifact.run_id), source)
                .map_err(|error| ApiError::internal(&error)),
            (None, Some(wanted)) => self.find_release(wanted),
            (None, None) => self
                .store
                .list_releases(1)
                .map_err(|error| ApiError::internal(&error))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::bad_request("there is no release yet: run `lastmile deploy ENV` without --release to build one")
                }),
        }
    }

    /// Environments whose actual state differs from the desired one (no
    /// deployment running): environment → what differs.
    pub(crate) async fn drift(&self) -> std::collections::BTreeMap<String, String> {
        let mut drift = std::collections::BTreeMap::new();
        let Ok(instances) = self.instances().await else {
            return drift;
        };
        for env in self.environment_specs() {
            let Ok(Some(state)) = self.store.get_environment(&env.name) else {
                continue;
            };
            if !matches!(self.store.running_deployment(&env.name), Ok(None)) {
                continue;
            }
            let Some(current) = state.current_release.clone() else {
                continue;
            };
            let ready = instances
                .iter()
                .filter(|instance| {
                    instance.release_id == current
                        && instance.belongs_to(&env.name)
                        && matches!(
                            instance.state,
                            lastmile_host::InstanceState::Ready
                                | lastmile_host::InstanceState::Starting
                                | lastmile_host::InstanceState::Restarting
                        )
                })
                .count();
            if ready < env.instances as usize {
                drift.insert(
                    env.name.clone(),
                    format!(
                        "{ready} of {} of {} are up",
                        counted(u64::from(env.instances), "instance"),
                        self.release_label(&current)
                    ),
                );
            }
        }
        drift
    }

    /// Brings `environment` back to its desired state: instances that
    /// crashed for good are removed and the set is started again. False
    /// when a deployment holds the environment.
    pub(crate) async fn heal(&self, environment: &str) -> Result<bool, ApiError> {
        let Ok(_guard) = self.deploying.try_lock() else {
            return Ok(false);
        };
        let Some(env) = self
            .environment_specs()
            .into_iter()
            .find(|env| env.name == environment)
        else {
            return Ok(false);
        };
        for host in &self.hosts {
            let instances = host
                .instances()
                .await
                .map_err(|error| ApiError::internal(&error))?;
            for instance in instances {
                if instance.belongs_to(environment)
                    && matches!(
                        instance.state,
                        lastmile_host::InstanceState::CrashLoop
                            | lastmile_host::InstanceState::Stopped
                            | lastmile_host::InstanceState::Unhealthy
                    )
                {
                    let _ = host.stop_instance(&instance.instance_id).await;
                }
            }
        }
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release).map_err(|error| error.to_string())
        };
        self.engine
            .restore(&[env], &service_of, &*self.progress_sink())
            .await
            .map_err(|error| ApiError::internal(&error))?;
        Ok(true)
    }

    /// The instances of every host.
    async fn instances(&self) -> Result<Vec<InstanceInfo>, lastmile_host::HostError> {
        let mut instances = Vec::new();
        for host in &self.hosts {
            instances.extend(host.instances().await?);
        }
        Ok(instances)
    }

    /// A release's router figures, one row per host that answers. (One
    /// host today; quantiles of several hosts do not add up, so they are
    /// not merged.)
    async fn stats(&self, release: &str, window: Duration) -> Vec<ReleaseStats> {
        let mut rows = Vec::new();
        for host in &self.hosts {
            if let Ok(row) = host.stats(release, window).await {
                rows.push(row);
            }
        }
        rows
    }

    /// The app's store.
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self, window: Duration) -> Result<StatusReport, ApiError> {
        let specs = self.environment_specs();
        let mut environments = Vec::new();
        for env in &specs {
            let state = self
                .store
                .get_environment(&env.name)
                .map_err(|error| ApiError::internal(&error))?;
            // A deployment can only begin when none runs, so a running one is
            // always the newest: one query answers both.
            let last_deployment = self
                .store
                .last_deployment(&env.name)
                .map_err(|error| ApiError::internal(&error))?;
            let deployment = last_deployment
                .clone()
                .filter(|last| last.status == lastmile_store::DeploymentStatus::Running);
            let weights: Vec<WeightShare> = state
                .as_ref()
                .map(|state| {
                    let total: u32 = state.weights.iter().map(|(_, weight)| *weight).sum();
                    state
                        .weights
                        .iter()
                        .map(|(release, weight)| WeightShare {
                            release: release.clone(),
                            weight: *weight,
                            percent: if total == 0 {
                                0.0
                            } else {
                                f64::from(*weight) * 100.0 / f64::from(total)
                            },
                        })
                        .collect()
                })
                .unwrap_or_default();
            environments.push(EnvironmentStatus {
                name: env.name.clone(),
                listen: self
                    .engine
                    .listening(&env.name)
                    .or(env.route.as_ref().map(|route| route.listen)),
                tls: env.route.as_ref().is_some_and(|route| route.tls.is_some()),
                strategy: serde_json::to_value(&env.strategy).unwrap_or_default(),
                instances: env.instances,
                current_release: state
                    .as_ref()
                    .and_then(|state| state.current_release.clone()),
                previous_release: state
                    .as_ref()
                    .and_then(|state| state.previous_release.clone()),
                weights,
                deployment,
                last_deployment: last_deployment.as_ref().map(LastDeployment::from),
            });
        }
        let mut instances = self
            .instances()
            .await
            .map_err(|error| ApiError::internal(&error))?;
        let releases = self
            .store
            .list_releases(20)
            .map_err(|error| ApiError::internal(&error))?;
        // By environment, then newest release first (as `releases` lists
        // them), then by instance: an order that does not follow the ids'
        // hashes.
        let newest_first = |release: &str| {
            releases
                .iter()
                .position(|known| known.id == release)
                .unwrap_or(usize::MAX)
        };
        instances.sort_by(|a, b| {
            lastmile_host::instance_environment(&a.instance_id)
                .cmp(&lastmile_host::instance_environment(&b.instance_id))
                .then_with(|| newest_first(&a.release_id).cmp(&newest_first(&b.release_id)))
                .then_with(|| a.instance_id.cmp(&b.instance_id))
        });
        let mut stats = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for instance in &instances {
            if seen.insert(instance.release_id.clone()) {
                for row in self.stats(&instance.release_id, window).await {
                    stats.push(ReleaseStatsRow {
                        release: instance.release_id.clone(),
                        stats: row,
                    });
                }
            }
        }
        let deployments = self
            .store
            .list_deployments(10)
            .map_err(|error| ApiError::internal(&error))?;
        Ok(StatusReport {
            app: self.app.clone(),
            approvals: None,
            certificates: self.edge.status(),
            control: *lock(&self.control_addr),
            deployments,
            drift: None,
            environments,
            flags: self.flags.status(self.store.as_ref()),
            instances,
            pid: std::process::id(),
            releases,
            stats,
        })
    }

    /// `POST /api/v1/deploy`: one deployment, to the end.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeploymentOutcome, ApiError> {
        self.deploy_with_spec(request, None).await
    }

    /// Like [`Controller::deploy`], with the spec given (the one of the
    /// commit being deployed) instead of read from the spec file.
    pub async fn deploy_with_spec(
        &self,
        request: DeployRequest,
        given: Option<(Spec, String)>,
    ) -> Result<DeploymentOutcome, ApiError> {
        let Ok(_guard) = self.deploying.try_lock() else {
            return Err(ApiError::conflict(
                "a deployment is already running; wait for it (see `lastmile status`)",
            ));
        };
        // The spec on disk may have changed since `up` started: a deploy
        // takes the environment settings from it, and the release records
        // it for the service settings.
        let (spec, source) = match given {
            Some(given) => given,
            None => self.reload_spec()?,
        };
        let env = self.with_override(find_environment(&spec, &request.environment)?.clone());
        if env.route.is_none() {
            return Err(ApiError::bad_request(format!(
                "environment `{}` has no `route.listen`, so the router has nowhere to serve it: add `route: {{ listen: \"127.0.0.1:8080\" }}`",
                env.name
            )));
        }
        let release = self.release_for(&request, &spec, &source)?;
        if self.store_has_missing_artifact(&release) {
            return Err(ApiError::bad_request(format!(
                "release {} needs artifact {}, which is not in the artifact store any more; build it again with `lastmile deploy {}`",
                release.label(),
                release.artifact_id,
                env.name
            )));
        }
        let service = self.service_of(&release).map_err(|error| {
            // The request is fine; the app lacks a secret someone must set.
            if matches!(error, ServiceError::MissingSecrets { .. }) {
                ApiError::conflict(error.to_string())
            } else {
                ApiError::bad_request(error.to_string())
            }
        })?;
        if env.gates.approval_required {
            let Some(approver) = &request.approved_by else {
                return Err(ApiError::forbidden(format!(
                    "environment `{}` requires approval (gates.approval: required): run `lastmile deploy {} --approve`, which records you as the approver",
                    env.name, env.name
                )));
            };
            self.store
                .record_event(
                    "deployment.approved",
                    &format!("environment/{}", env.name),
                    approver,
                    &json!({ "release": release.id, "version": release.version }),
                )
                .map_err(|error| ApiError::internal(&error))?;
            self.progress.line(&format!(
                "{}: release {} approved by {approver}",
                env.name,
                release.label()
            ));
        }
        for problem in self.flags.reload(&spec, self.store.as_ref()) {
            self.progress
                .warn(&format!("flag override skipped: {problem}"));
        }
        // The certificates the routes serve are in place before a listener
        // starts; a certificate file that cannot be used fails the deploy.
        self.edge
            .install(&spec, self.spec_dir())
            .await
            .map_err(|error| ApiError::bad_request(format!("{error:#}")))?;
        let edge_spec = spec.clone();
        self.warn_on_listener_changes(&spec, &env);
        *lock(&self.spec) = spec;
        // The release already serving is not deployed again; the engine
        // says so.
        let serving = self
            .store
            .get_environment(&env.name)
            .ok()
            .flatten()
            .and_then(|state| state.current_release);
        if serving.as_deref() != Some(release.id.as_str()) {
            self.progress.line(&format!(
                "deploying {} to {} with {}",
                release.label(),
                env.name,
                env.strategy.name()
            ));
        }
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release).map_err(|error| error.to_string())
        };
        let outcome = self
            .engine
            .deploy(
                &env,
                &service,
                &release,
                &service_of,
                &*self.progress_sink(),
            )
            .await
            .map_err(engine_error)?;
        if let Err(error) =
            self.edge
                .start_renewals(&edge_spec, self.spec_dir(), &[env.name.as_str()])
        {
            self.progress
                .warn(&format!("automatic certificates cannot start: {error:#}"));
        }
        Ok(outcome)
    }

    /// Which cohort buckets each environment's running canary owns, for
    /// flags that `follow_canary`.
    fn refresh_canary_buckets(&self, specs: &[Environment]) {
        let mut buckets = std::collections::HashMap::new();
        for env in specs {
            let Ok(Some(running)) = self.store.running_deployment(&env.name) else {
                continue;
            };
            if running.strategy != lastmile_store::DeploymentKind::Canary {
                continue;
            }
            let Ok(Some(state)) = self.store.get_environment(&env.name) else {
                continue;
            };
            let total: u32 = state.weights.iter().map(|(_, weight)| *weight).sum();
            if let Some((_, units)) = state
                .weights
                .iter()
                .find(|(release, _)| release == &running.to_release)
                && total > 0
            {
                buckets.insert(env.name.clone(), units * 10_000 / total);
            }
        }
        self.flags.canary_buckets().set(buckets);
    }

    /// `GET /api/v1/dora`: the four DORA figures per environment over the
    /// last `days`, with their tiers.
    pub fn dora(&self, days: u32) -> Result<Value, ApiError> {
        let window = Duration::from_secs(u64::from(days) * 86_400);
        let now = now_millis();
        let mut reports = Vec::new();
        for env in self.environment_specs() {
            let report = lastmile_monitor::dora(self.store.as_ref(), &env.name, now, window)
                .map_err(|error| ApiError::internal(&error))?;
            reports.push(report);
        }
        Ok(json!({ "days": days, "environments": reports }))
    }

    /// `GET /metrics`: the store's runs, deployments, rollbacks and DORA
    /// figures, plus the router's per-release counters and latency histogram
    /// since it started and its latency quantiles over the last 60 s. The
    /// router counts per release, so a release live in two environments
    /// shows the same figures under each.
    pub async fn metrics(&self) -> Result<String, ApiError> {
        let mut snapshot = lastmile_monitor::snapshot_from_store(
            self.store.as_ref(),
            now_millis(),
            Duration::from_secs(30 * 86_400),
        )
        .map_err(|error| ApiError::internal(&error))?;
        for env in self.environment_specs() {
            let Ok(Some(state)) = self.store.get_environment(&env.name) else {
                continue;
            };
            for (release, _) in &state.weights {
                for stats in self.stats(release, Duration::from_secs(60)).await {
                    snapshot.router.push(lastmile_monitor::RouterTraffic {
                        environment: env.name.clone(),
                        release: release.clone(),
                        requests: stats.requests_total,
                        server_errors: stats.errors_5xx_total,
                        connect_errors: stats.connect_errors_total,
                        durations: lastmile_monitor::DurationHistogram {
                            buckets: stats
                                .latency_buckets
                                .iter()
                                .map(|bucket| (bucket.le_seconds, bucket.requests))
                                .collect(),
                            count: stats.latency_count,
                            sum_seconds: stats.latency_sum_seconds,
                        },
                    });
                    snapshot
                        .router_latency
                        .push(lastmile_monitor::ReleaseLatency {
                            environment: env.name.clone(),
                            release: release.clone(),
                            p50_seconds: stats.p50_ms / 1000.0,
                            p95_seconds: stats.p95_ms / 1000.0,
                            p99_seconds: stats.p99_ms / 1000.0,
                        });
                }
            }
        }
        Ok(lastmile_monitor::render_metrics(&snapshot))
    }

    /// The flags, for the OFREP endpoints.
    pub fn flags(&self) -> &Arc<crate::flags::Flags> {
        &self.flags
    }

    /// `GET /api/v1/flags`.
    pub fn list_flags(&self) -> Value {
        json!({ "flags": self.flags.status(self.store.as_ref()) })
    }

    /// `POST /api/v1/flags/{key}`: a runtime override (kill switch,
    /// default, rollout), recorded with who.
    pub fn override_flag(
        &self,
        key: &str,
        change: &lastmile_flags::Override,
        actor: &str,
    ) -> Result<Value, ApiError> {
        let value = self
            .flags
            .apply_override(self.store.as_ref(), key, change, actor)
            .map_err(ApiError::bad_request)?;
        self.progress
            .line(&format!("flag {key}: override {value} by {actor}"));
        Ok(json!({ "key": key, "override": value }))
    }

    /// `DELETE /api/v1/flags/{key}`: back to `lastmile.yaml`.
    pub fn reset_flag(&self, key: &str, actor: &str) -> Result<Value, ApiError> {
        let removed = self
            .flags
            .reset(self.store.as_ref(), key, actor)
            .map_err(ApiError::bad_request)?;
        if removed {
            self.progress
                .line(&format!("flag {key}: back to lastmile.yaml (by {actor})"));
        }
        Ok(json!({ "key": key, "reset": removed }))
    }

    /// `POST /api/v1/promote`: resume a paused canary or skip its steps.
    pub fn promote(&self, environment: &str) -> Result<Value, ApiError> {
        self.engine
            .promote(environment)
            .map_err(|error| ApiError::conflict(error.to_string()))?;
        self.progress
            .line(&format!("{environment}: promote requested"));
        Ok(json!({ "environment": environment, "promote": true }))
    }

    /// `POST /api/v1/abort`: all traffic back to stable, the canary fails.
    pub fn abort(&self, environment: &str) -> Result<Value, ApiError> {
        self.engine
            .abort(environment)
            .map_err(|error| ApiError::conflict(error.to_string()))?;
        self.progress
            .line(&format!("{environment}: abort requested"));
        Ok(json!({ "environment": environment, "abort": true }))
    }

    /// `POST /api/v1/rollback`.
    pub async fn rollback(&self, request: RollbackRequest) -> Result<DeploymentOutcome, ApiError> {
        let Ok(_guard) = self.deploying.try_lock() else {
            return Err(ApiError::conflict(
                "a deployment is running; wait for it or let it fail before rolling back",
            ));
        };
        let specs = self.environment_specs();
        let env = specs
            .iter()
            .find(|env| env.name == request.environment)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = specs.iter().map(|env| env.name.as_str()).collect();
                ApiError::not_found(format!(
                    "lastmile.yaml has no environment `{}`; it has: {}",
                    request.environment,
                    known.join(", ")
                ))
            })?;
        let target = match &request.to {
            Some(wanted) => Some(self.find_release(wanted)?),
            None => None,
        };
        let previous = || {
            self.store
                .get_environment(&env.name)
                .ok()
                .flatten()
                .and_then(|state| state.previous_release)
        };
        if let Some(label) = target
            .as_ref()
            .map(lastmile_store::ReleaseRecord::label)
            .or_else(|| previous().map(|id| self.release_label(&id)))
        {
            self.progress
                .line(&format!("rolling back {} to {label}", env.name));
        }
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release).map_err(|error| error.to_string())
        };
        let outcome = self
            .engine
            .rollback(&env, target.as_ref(), &service_of, &*self.progress_sink())
            .await
            .map_err(engine_error)?;
        Ok(outcome)
    }

    fn reload_spec(&self) -> Result<(Spec, String), ApiError> {
        let source = std::fs::read_to_string(&self.spec_file).map_err(|error| {
            ApiError::bad_request(format!("cannot read {}: {error}", self.spec_file.display()))
        })?;
        let (spec, _warnings) =
            lastmile_spec::parse(&self.spec_file.display().to_string(), &source)
                .map_err(|errors| ApiError::bad_request(errors.render(false)))?;
        Ok((spec, source))
    }

    fn find_release(&self, wanted: &str) -> Result<lastmile_store::ReleaseRecord, ApiError> {
        let releases = self
            .store
            .list_releases(10_000)
            .map_err(|error| ApiError::internal(&error))?;
        let matches: Vec<_> = releases
            .into_iter()
            .filter(|release| release.id.starts_with(wanted) || release.version == wanted)
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(ApiError::not_found(format!(
                "no release matches `{wanted}`; `lastmile status` lists them"
            ))),
            n => Err(ApiError::bad_request(format!(
                "`{wanted}` matches {n} releases; give more of the id"
            ))),
        }
    }

    fn store_has_missing_artifact(&self, release: &lastmile_store::ReleaseRecord) -> bool {
        BlobStore::open(&self.state_dir)
            .map(|blobs| blobs.path(&release.artifact_id).is_none())
            .unwrap_or(true)
    }

    /// A release id as people read it (`v2 (fd97e584)`), from the store.
    fn release_label(&self, id: &str) -> String {
        let version = self
            .store
            .get_release(id)
            .ok()
            .flatten()
            .map(|release| release.version);
        lastmile_store::release_label(version.as_deref(), id)
    }

    /// Freezes the running canaries for a successor process to resume;
    /// how many there are.
    pub(crate) fn suspend_canaries(&self) -> usize {
        self.engine.suspend_canaries()
    }

    /// Lets frozen canaries go on here (the successor did not start).
    pub(crate) fn unsuspend_canaries(&self) {
        self.engine.unsuspend_canaries();
    }

    /// Waits for the deployment in progress and holds off the next.
    pub(crate) async fn hold_deployments(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.deploying.lock().await
    }

    fn progress_sink(&self) -> Arc<dyn lastmile_rollout::Progress> {
        Arc::new(ProgressSink(self.progress.clone()))
    }
}

/// Forwards the engine's progress to the terminal.
#[derive(Debug)]
struct ProgressSink(Arc<dyn Progress>);

impl lastmile_rollout::Progress for ProgressSink {
    fn step(&self, text: &str) {
        self.0.line(&format!("  {text}"));
    }
}

/// The first 12 characters of a commit sha.
pub(crate) fn short(id: &str) -> String {
    id.chars().take(12).collect()
}
