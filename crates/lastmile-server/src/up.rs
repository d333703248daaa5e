//! `lastmile up`: the controller and the `local` host in one process, in
//! the foreground, until Ctrl-C, `lastmile down`, or a handover to a
//! restarted process.
//!
//! After `lastmile restart` the process the user started stays in the
//! foreground as the parent of every process that takes over (it is their
//! child subreaper): they write to its terminal, it passes Ctrl-C and
//! SIGTERM on to the one serving, and it exits when the last of them has,
//! with its status.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use lastmile_artifact::BlobStore;
use lastmile_host::HostHandle;
use lastmile_node::{LocalHost, handover};
use lastmile_rollout::{Engine, EngineError};
use lastmile_spec::{Environment, Spec};
use lastmile_store::{SqliteStore, Store, counted, now_millis};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::control::{self, ApiError, ArtifactRef, DeployRequest, RollbackRequest};
use crate::report::{
    EnvironmentStatus, LastDeployment, ReleaseStatsRow, StatusReport, WeightShare,
};

/// Set in a process started by `lastmile restart`: the control address of
/// the process it takes over from.
pub const HANDOVER_FROM_ENV: &str = "LASTMILE_HANDOVER_FROM";

/// How long a restarted process may take to serve before the old one gives
/// up on it and keeps serving.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a new process waits for the one it takes over from to answer
/// that it serves (it answers at once; a hang means it is gone or stuck).
const PREDECESSOR_ANSWER: Duration = Duration::from_secs(30);

/// How long draining waits for in-flight requests and WebSockets on exit.
const EXIT_DRAIN: Duration = Duration::from_secs(10);

/// How long the control API gets to answer its last requests once a stop
/// was requested.
const API_CLOSE: Duration = Duration::from_secs(5);

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: what stops `lastmile up`,
/// `lastmile server` and a pipeline run. The handlers are in place when
/// this returns, before the future is first polled: a signal that comes
/// early (just after a listener is bound) stops the process the same way
/// instead of killing it. Call it inside the runtime.
pub fn stop_requested() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    let recv = |stream: Option<tokio::signal::unix::Signal>| async move {
        match stream {
            Some(mut stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            () = recv(interrupt) => {}
            () = recv(terminate) => {}
        }
    }
}

/// Human progress lines; the binary prints them.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// One line of progress.
    fn line(&self, text: &str);
    /// Something the user should look at.
    fn warn(&self, text: &str);
}

/// An artifact the CLI just built, to deploy.
#[derive(Debug, Clone)]
pub struct BuiltArtifact {
    /// Content address.
    pub id: String,
    /// The run that packed it.
    pub run_id: i64,
}

/// What `lastmile up` was asked to do.
#[derive(Debug)]
pub struct UpOptions {
    /// The spec as loaded at start.
    pub loaded: lastmile_spec::LoadedSpec,
    /// Absolute state directory.
    pub state_dir: PathBuf,
    /// The key that seals secrets set through the API and ACME state
    /// (`lastmile_store::key_file_for` says where it usually is).
    pub secret_key_file: PathBuf,
    /// Environment to deploy; the first one when `None`.
    pub environment: Option<String>,
    /// Overrides the environment's `route.listen`.
    pub listen: Option<SocketAddr>,
    /// Control API address (loopback).
    pub control: SocketAddr,
    /// What to deploy; `None` in a process taking over from a restart,
    /// which serves what is already deployed.
    pub artifact: Option<BuiltArtifact>,
    /// The router prints one line per request.
    pub access_log: bool,
    /// Who approves the first deployment (`--approve`), for environments
    /// with `gates.approval: required`.
    pub approved_by: Option<String>,
    /// Who the dashboard's and the loopback API's actions are recorded as:
    /// the person at this machine (`local:alice`), as the CLI records them.
    pub local_actor: String,
    /// The state directory's lock, held until this process exits and
    /// handed to a process taking over.
    pub lock: crate::up_lock::UpLock,
}

/// True in a process started by `lastmile restart` to take over.
pub fn is_handover() -> bool {
    std::env::var_os(HANDOVER_FROM_ENV).is_some()
}

/// Why the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Ctrl-C, SIGTERM or `lastmile down`: stop everything.
    Stop,
    /// A restarted process serves now: drain and leave its files alone.
    HandedOver,
}

/// The running controller, shared with the control API.
#[derive(Debug)]
pub struct Controller {
    app: String,
    spec_file: PathBuf,
    spec: Mutex<Spec>,
    state_dir: PathBuf,
    secret_key_file: PathBuf,
    store: Arc<SqliteStore>,
    engine: Engine,
    host: LocalHost,
    /// Certificates of the TLS routes (files, ACME) on every host.
    edge: crate::edge::Edge,
    listen_override: Option<(String, SocketAddr)>,
    control_addr: Mutex<Option<SocketAddr>>,
    /// The control API listener's descriptor, to hand to a restarted
    /// process.
    control_fd: Mutex<Option<std::os::fd::RawFd>>,
    /// `lastmile up`'s lock of the state directory (none in a server).
    up_lock: std::sync::OnceLock<crate::up_lock::UpLock>,
    deploying: tokio::sync::Mutex<()>,
    restarting: tokio::sync::Mutex<()>,
    stop: Notify,
    /// The control API stops accepting (a successor serves it now); the
    /// rest of this process stops on `stop`.
    close_api: Notify,
    successor_ready: Notify,
    exit: Mutex<Option<Exit>>,
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

/// What a controller for one app is made of.
pub(crate) struct ControllerOptions {
    pub(crate) spec: Spec,
    pub(crate) spec_file: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// The key that seals the app's secrets and ACME state.
    pub(crate) secret_key_file: PathBuf,
    pub(crate) access_log: bool,
    pub(crate) listen_override: Option<(String, SocketAddr)>,
    pub(crate) secrets: Option<SecretLookup>,
    pub(crate) inherited: std::collections::BTreeMap<SocketAddr, std::net::TcpListener>,
    /// The app's store when the caller already opened it (one connection
    /// per app, not two).
    pub(crate) store: Option<Arc<SqliteStore>>,
}

impl Controller {
    /// The controller of one app with its own store and `local` host
    /// (supervisor and router); no loop runs yet.
    pub(crate) fn build(
        options: ControllerOptions,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<Arc<Controller>> {
        let store = match options.store {
            Some(store) => store,
            None => {
                let (store, _report) =
                    SqliteStore::open(&options.state_dir).with_context(|| {
                        format!("cannot open the state in {}", options.state_dir.display())
                    })?;
                Arc::new(store)
            }
        };
        let spec = options.spec;
        let router = lastmile_router::RouterConfig {
            access_log: options.access_log,
            ..lastmile_router::RouterConfig::default()
        };
        let host = LocalHost::open("local", &options.state_dir, router, options.inherited)?;
        let orphans_killed = host.supervisor().orphans_killed();
        if orphans_killed > 0 {
            progress.warn(&format!(
                "stopped {} left running by a lastmile process that was killed",
                counted(orphans_killed as u64, "instance")
            ));
        }
        let hosts: Vec<Arc<dyn HostHandle>> = vec![Arc::new(host.clone())];
        let edge = crate::edge::Edge::new(
            hosts.clone(),
            &options.state_dir,
            &options.secret_key_file,
            progress.clone(),
        );
        let engine = Engine::new(store.clone() as Arc<dyn Store>, hosts);

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
            host,
            edge,
            listen_override: options.listen_override,
            control_addr: Mutex::new(None),
            control_fd: Mutex::new(None),
            up_lock: std::sync::OnceLock::new(),
            deploying: tokio::sync::Mutex::new(()),
            restarting: tokio::sync::Mutex::new(()),
            stop: Notify::new(),
            close_api: Notify::new(),
            successor_ready: Notify::new(),
            exit: Mutex::new(None),
            progress,
            flags: Arc::new(flags),
            secrets: options
                .secrets
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
        }))
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

    /// Starts the controller's loops (route refreshes on instance events,
    /// housekeeping); the caller aborts them when it stops.
    pub(crate) fn start_loops(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(watch_instances(self.clone())),
            tokio::spawn(housekeeping(self.clone())),
        ]
    }
}

/// Runs `lastmile up` until it is stopped.
pub async fn run(options: UpOptions, progress: Arc<dyn Progress>) -> anyhow::Result<Ended> {
    let inherited = handover::take_inherited()?;
    let inherited_control = handover::take_inherited_control()?;
    let spec = options.loaded.spec.clone();
    if spec.service.is_none() {
        bail!("lastmile.yaml has no `service`, so there is nothing to run: add `service.run`");
    }
    let environment = match &options.environment {
        Some(name) => find_environment(&spec, name)
            .map_err(|error| anyhow::anyhow!("{}", error.message()))?
            .name
            .clone(),
        None => spec
            .environments
            .first()
            .context(
                "lastmile.yaml has no `environments`: add one, e.g. \
                 `environments: { local: { route: { listen: \"127.0.0.1:8080\" } } }`",
            )?
            .name
            .clone(),
    };
    let controller = Controller::build(
        ControllerOptions {
            spec,
            spec_file: options.loaded.file.clone(),
            state_dir: options.state_dir.clone(),
            secret_key_file: options.secret_key_file.clone(),
            access_log: options.access_log,
            listen_override: options.listen.map(|addr| (environment.clone(), addr)),
            secrets: None,
            inherited,
            store: None,
        },
        progress,
    )?;
    let _ = controller.up_lock.set(options.lock);

    let loops = controller.start_loops();
    let result = serve(
        &controller,
        &environment,
        options.artifact,
        ControlListener {
            requested: options.control,
            inherited: inherited_control,
        },
        options.approved_by.clone(),
        options.local_actor.clone(),
    )
    .await;
    let exit = controller.exit();
    for task in loops {
        task.abort();
    }
    controller.wind_down(exit).await;
    result?;
    // The process the user started outlives its handover: it stays the
    // parent of the session, in the foreground.
    Ok(match exit {
        Exit::HandedOver if !is_handover() => Ended::StaysInForeground,
        _ => Ended::Stopped,
    })
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ended {
    /// Everything this process started has stopped.
    Stopped,
    /// A restarted process serves in this one's place; this one, the one
    /// the user started, is to stay as the session's parent: drop the
    /// runtime (closing every socket it still holds), then call
    /// [`crate::session::keep`].
    StaysInForeground,
}

/// The control API's listener: handed over by the process this one takes
/// over from, or bound on the requested address.
struct ControlListener {
    requested: SocketAddr,
    inherited: Option<std::net::TcpListener>,
}

async fn serve(
    controller: &Arc<Controller>,
    environment: &str,
    artifact: Option<BuiltArtifact>,
    control: ControlListener,
    approved_by: Option<String>,
    local_actor: String,
) -> anyhow::Result<()> {
    // What a previous process served comes back first; then the new build
    // is deployed (nothing moves when it is the release already serving).
    let resuming = controller.restore().await?;
    if resuming > 0 && artifact.is_some() {
        controller.progress.warn(
            "a canary the previous process was running resumes; the new build is not deployed now (run `lastmile deploy` after it ends)",
        );
    }
    if let Some(artifact) = artifact.filter(|_| resuming == 0) {
        let answer = controller
            .deploy(DeployRequest {
                environment: environment.to_string(),
                release: None,
                artifact: Some(ArtifactRef {
                    id: artifact.id,
                    run_id: artifact.run_id,
                }),
                approved_by: approved_by.clone(),
            })
            .await
            .map_err(|error| anyhow::anyhow!("{}", error.message()))?;
        if answer["status"] != "succeeded" {
            let mut message = format!(
                "the deployment to {environment} failed: {}",
                answer["error"].as_str().unwrap_or("no reason given")
            );
            for line in answer["last_lines"].as_array().into_iter().flatten() {
                message.push_str("\n  ");
                message.push_str(line.as_str().unwrap_or_default());
            }
            bail!(message);
        }
    }

    let listener = match control.inherited {
        Some(listener) => {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)?
        }
        None => control::bind(control.requested).await?,
    };
    let control_addr = listener.local_addr()?;
    *lock(&controller.control_addr) = Some(control_addr);
    *lock(&controller.control_fd) = Some(std::os::fd::AsRawFd::as_raw_fd(&listener));
    // The previous process shares this listener and still answers on it:
    // it must hear from this one (on the same address) before this one
    // accepts, and `up.json` names this process only once it took over.
    if let Some(previous) = std::env::var_os(HANDOVER_FROM_ENV) {
        let previous = previous.to_string_lossy().into_owned();
        tokio::time::timeout(PREDECESSOR_ANSWER, tell_predecessor(&previous))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {PREDECESSOR_ANSWER:?}"))
            .and_then(|told| told)
            .with_context(|| format!("cannot tell the previous process ({previous}) to drain"))?;
        controller.progress.line(&format!(
            "took over from the previous process (pid {}); it is draining",
            std::os::unix::process::parent_id()
        ));
    }
    let api_controller = controller.clone();
    let api_stop = controller.clone();
    // The server's API and dashboard for this one app, beside the control
    // API; loopback callers need no token.
    let server = crate::server::Server::for_local(
        controller.clone(),
        controller.progress.clone(),
        local_actor,
    )?;
    let routes = control::routes(api_controller).merge(crate::server::local_router(server));
    let api = tokio::spawn(async move {
        axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                () = api_stop.stopped() => {}
                () = api_stop.close_api.notified() => {}
            }
        })
        .await
    });
    controller.write_up_file(control_addr)?;
    controller.banner(control_addr);

    tokio::select! {
        () = stop_requested() => controller.set_exit(Exit::Stop),
        () = controller.stopped() => {}
    }
    controller.stop.notify_waiters();
    let _ = tokio::time::timeout(API_CLOSE, api).await;
    Ok(())
}

/// Refreshes routes on every instance event, and reports crashes.
async fn watch_instances(controller: Arc<Controller>) {
    use lastmile_supervisor::InstanceEvent as E;
    let progress = controller.progress.clone();
    controller
        .host
        .watch_instances(|event| {
            if matches!(event, E::Crashed { .. } | E::CrashLoop { .. }) {
                progress.warn(&format!("{event}"));
            }
        })
        .await;
}

/// Periodic work the engine asks for (stopping warm sets whose rollback
/// window has passed).
async fn housekeeping(controller: Arc<Controller>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let specs = controller.environment_specs();
        if let Err(error) = controller.engine.tick(&specs).await {
            controller.progress.warn(&format!("housekeeping: {error}"));
        }
        controller.refresh_canary_buckets(&specs);
    }
}

/// Posts `handover/ready` to the previous process's control API.
async fn tell_predecessor(addr: &str) -> anyhow::Result<()> {
    let request =
        lastmile_http::http::Request::post(format!("http://{addr}/api/v1/handover/ready"))
            .body(Default::default())?;
    let answer = lastmile_http::Client::new()
        .timeout(PREDECESSOR_ANSWER)
        .send(request)
        .await?;
    if !answer.is_success() {
        bail!("it answered {}", answer.status);
    }
    Ok(())
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

/// The secrets a release's `service.secrets` names that have no value.
#[derive(Debug, thiserror::Error)]
#[error(
    "no value for secret(s) {names} that service.secrets names: set them with `lastmile secret set {app} NAME`"
)]
struct MissingSecrets {
    /// Their names, comma-separated.
    names: String,
    /// The app.
    app: String,
}

/// The API's answer to an engine that refused: a request that cannot be
/// carried out as configured is the caller's (400), one the environment's
/// state does not allow now a conflict (409), a failing store the server's.
fn engine_error(error: EngineError) -> ApiError {
    match error {
        EngineError::Conflict(message) => ApiError::conflict(message),
        EngineError::Invalid(message) => ApiError::bad_request(message),
        EngineError::Store(error) => ApiError::internal(&error.into()),
        error @ EngineError::Unrecorded { .. } => ApiError::internal(&error.into()),
    }
}

fn find_environment<'a>(spec: &'a Spec, name: &str) -> Result<&'a Environment, ApiError> {
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
    fn exit(&self) -> Exit {
        lock(&self.exit).unwrap_or(Exit::Stop)
    }

    fn set_exit(&self, exit: Exit) {
        let mut current = lock(&self.exit);
        if current.is_none() {
            *current = Some(exit);
        }
    }

    async fn stopped(&self) {
        loop {
            let notified = self.stop.notified();
            if lock(&self.exit).is_some() {
                return;
            }
            notified.await;
        }
    }

    /// What a stop requested now will stop, and how long it may take at
    /// most: the answer of `POST /api/v1/shutdown`, from which `lastmile
    /// down` knows what to wait for.
    pub async fn shutdown_plan(&self) -> Value {
        let instances: Vec<Value> = self
            .host
            .instances()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|instance| {
                json!({
                    "instance_id": instance.instance_id,
                    "leader_pid": instance.leader_pid,
                    "main_pid": instance.main_pid,
                })
            })
            .collect();
        let longest = API_CLOSE + EXIT_DRAIN + self.host.supervisor().longest_stop_grace();
        json!({
            "stopping": true,
            "pid": std::process::id(),
            "instances": instances,
            "listeners": self.host.listening_addrs(),
            "stop_within_ms": u64::try_from(longest.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Whether this process has handed over to a restarted one (it only
    /// drains now), or is handing over: a restart is under way.
    pub fn handing_over(&self) -> bool {
        *lock(&self.exit) == Some(Exit::HandedOver) || self.restarting.try_lock().is_err()
    }

    /// `lastmile down`.
    pub fn request_shutdown(&self) {
        self.set_exit(Exit::Stop);
        self.stop.notify_waiters();
    }

    /// The restarted process serves: let `restart` answer, then drain.
    pub fn handover_ready(&self) {
        self.successor_ready.notify_waiters();
    }

    /// Environments of the current spec, with the `--listen` override
    /// applied.
    fn environment_specs(&self) -> Vec<Environment> {
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

    fn write_up_file(&self, control: SocketAddr) -> anyhow::Result<()> {
        let path = self.state_dir.join("up.json");
        let temp = self
            .state_dir
            .join(format!("up.json.{}", std::process::id()));
        let body = json!({
            "pid": std::process::id(),
            "control": control,
            "app": self.app,
            "started_at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or_default(),
        });
        std::fs::write(&temp, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn remove_up_file_if_ours(&self) {
        let path = self.state_dir.join("up.json");
        let ours = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|value| value["pid"] == std::process::id());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    fn banner(&self, control: SocketAddr) {
        for env in self.environment_specs() {
            if let Some(addr) = self.host.bound_addr(&env.name) {
                self.progress
                    .line(&format!("serving {} on http://{addr}", env.name));
            }
        }
        self.progress.line(&format!(
            "control API and dashboard on http://{control} (loopback only, so no token is needed); \
             `lastmile status` shows what runs; Ctrl-C stops everything"
        ));
        if !self.flags.current().0.is_empty() {
            self.progress.line(&format!(
                "feature flags (OFREP) on http://{control}/ofrep/v1/evaluate/flags"
            ));
        }
    }

    /// Stops what this process started: stop accepting, let in-flight
    /// requests finish, stop instances (their WebSockets close cleanly),
    /// then let upgraded connections go.
    async fn wind_down(&self, exit: Exit) {
        match exit {
            Exit::Stop => self
                .progress
                .line("stopping: draining connections and instances"),
            Exit::HandedOver if is_handover() => self
                .progress
                .line("handed over: draining connections, then exiting"),
            Exit::HandedOver => self.progress.line("handed over: draining connections"),
        }
        self.host.drain_and_stop(EXIT_DRAIN).await;
        if exit == Exit::Stop {
            self.remove_up_file_if_ours();
        }
    }

    /// Starts again what the store says each environment was serving, as
    /// after a restart (instances die with the process that ran them).
    /// Returns how many canaries resume in the background.
    async fn restore(self: &Arc<Self>) -> anyhow::Result<usize> {
        let spec = lock(&self.spec).clone();
        // Certificates first: the restored listeners serve HTTPS at once.
        self.edge.install(&spec, self.spec_dir()).await?;
        let specs = self.environment_specs();
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release)
                .map_err(|error| format!("{error:#}"))
        };
        let restored = self
            .engine
            .restore(&specs, &service_of, &*self.progress_sink())
            .await
            .context("cannot bring back the releases that were serving")?;
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
            .start_renewals(&spec, self.spec_dir(), &restored_environments)?;
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
                        .map_err(|error| format!("{error:#}"))
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
    ) -> anyhow::Result<lastmile_spec::Service> {
        let (spec, _) = lastmile_spec::parse("lastmile.yaml", &release.spec_source)
            .map_err(|errors| anyhow::anyhow!("{}", errors.render(false)))?;
        let mut service = spec
            .service
            .context("the release's lastmile.yaml has no `service`")?;
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
            return Err(MissingSecrets {
                names: missing.join(", "),
                app: self.app.clone(),
            }
            .into());
        }
        Ok(service)
    }

    /// Stops every instance and drains the router (the server's stop).
    pub(crate) async fn shut_down(&self) {
        self.wind_down(Exit::Stop).await;
    }

    /// Starts again what the store says each environment serves.
    pub(crate) async fn restore_state(self: &Arc<Self>) -> anyhow::Result<usize> {
        self.restore().await
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
                .map_err(|error| ApiError::internal(&error.into())),
            (None, Some(wanted)) => self.find_release(wanted),
            (None, None) => self
                .store
                .list_releases(1)
                .map_err(|error| ApiError::internal(&error.into()))?
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
        let Ok(instances) = self.host.instances().await else {
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
        let instances = self
            .host
            .instances()
            .await
            .map_err(|error| ApiError::internal(&anyhow::anyhow!("{error}")))?;
        for instance in instances {
            if instance.belongs_to(environment)
                && matches!(
                    instance.state,
                    lastmile_host::InstanceState::CrashLoop
                        | lastmile_host::InstanceState::Stopped
                        | lastmile_host::InstanceState::Unhealthy
                )
            {
                let _ = self.host.stop_instance(&instance.instance_id).await;
            }
        }
        let service_of = |release: &lastmile_store::ReleaseRecord| {
            self.service_of(release)
                .map_err(|error| format!("{error:#}"))
        };
        self.engine
            .restore(&[env], &service_of, &*self.progress_sink())
            .await
            .map_err(|error| ApiError::internal(&error.into()))?;
        Ok(true)
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
                .map_err(|error| ApiError::internal(&error.into()))?;
            // A deployment can only begin when none runs, so a running one is
            // always the newest: one query answers both.
            let last_deployment = self
                .store
                .last_deployment(&env.name)
                .map_err(|error| ApiError::internal(&error.into()))?;
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
                    .host
                    .bound_addr(&env.name)
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
            .host
            .instances()
            .await
            .map_err(|error| ApiError::internal(&anyhow::anyhow!("{error}")))?;
        let releases = self
            .store
            .list_releases(20)
            .map_err(|error| ApiError::internal(&error.into()))?;
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
                if let Ok(row) = self.host.stats(&instance.release_id, window).await {
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
            .map_err(|error| ApiError::internal(&error.into()))?;
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
    pub async fn deploy(&self, request: DeployRequest) -> Result<Value, ApiError> {
        self.deploy_with_spec(request, None).await
    }

    /// Like [`Controller::deploy`], with the spec given (the one of the
    /// commit being deployed) instead of read from the spec file.
    pub async fn deploy_with_spec(
        &self,
        request: DeployRequest,
        given: Option<(Spec, String)>,
    ) -> Result<Value, ApiError> {
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
            if error.downcast_ref::<MissingSecrets>().is_some() {
                ApiError::conflict(format!("{error:#}"))
            } else {
                ApiError::bad_request(format!("{error:#}"))
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
                .map_err(|error| ApiError::internal(&error.into()))?;
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
            self.service_of(release)
                .map_err(|error| format!("{error:#}"))
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
        self.report_outcome(&outcome);
        if let Err(error) =
            self.edge
                .start_renewals(&edge_spec, self.spec_dir(), &[env.name.as_str()])
        {
            self.progress
                .warn(&format!("automatic certificates cannot start: {error:#}"));
        }
        Ok(serde_json::to_value(&outcome).unwrap_or_default())
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
                .map_err(|error| ApiError::internal(&error.into()))?;
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
        .map_err(|error| ApiError::internal(&error.into()))?;
        for env in self.environment_specs() {
            let Ok(Some(state)) = self.store.get_environment(&env.name) else {
                continue;
            };
            for (release, _) in &state.weights {
                let Ok(stats) = self.host.stats(release, Duration::from_secs(60)).await else {
                    continue;
                };
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
    pub async fn rollback(&self, request: RollbackRequest) -> Result<Value, ApiError> {
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
            self.service_of(release)
                .map_err(|error| format!("{error:#}"))
        };
        let outcome = self
            .engine
            .rollback(&env, target.as_ref(), &service_of, &*self.progress_sink())
            .await
            .map_err(engine_error)?;
        self.report_outcome(&outcome);
        Ok(serde_json::to_value(&outcome).unwrap_or_default())
    }

    /// `POST /api/v1/restart`: start the binary on disk with the listening
    /// sockets, wait until it serves, then drain this process.
    pub async fn restart(self: &Arc<Self>) -> Result<Value, ApiError> {
        let Ok(_guard) = self.restarting.try_lock() else {
            return Err(ApiError::conflict("a restart is already in progress"));
        };
        // A running canary is frozen and handed over (the new process
        // resumes it at the same step); any other deployment is waited for.
        let suspended = self.engine.suspend_canaries();
        let _deploy_guard = if suspended > 0 {
            self.progress.line(&format!(
                "restarting: {} frozen; the new process resumes them",
                counted(suspended as u64, "running canary")
            ));
            None
        } else {
            Some(self.deploying.lock().await)
        };
        let control = lock(&self.control_addr)
            .ok_or_else(|| ApiError::conflict("still starting; try again in a moment"))?;
        let exe = std::env::current_exe().map_err(|error| {
            ApiError::internal(&anyhow::anyhow!("cannot find the lastmile binary: {error}"))
        })?;
        let mut command = std::process::Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(HANDOVER_FROM_ENV, control.to_string())
            .stdin(std::process::Stdio::null());
        handover::pass_listeners(
            &mut command,
            &handover::Handed {
                listeners: self.host.listener_fds(),
                control: *lock(&self.control_fd),
                lock: self.up_lock.get().map(crate::up_lock::UpLock::raw_fd),
            },
        );
        // The process the user started stays the parent of every process
        // that takes over, even once the one that started them has exited.
        let session_parent = !is_handover();
        if session_parent {
            crate::session::become_subreaper(true);
        }
        // This process keeps serving when the new one fails to start.
        let give_up = || {
            self.engine.unsuspend_canaries();
            if session_parent {
                crate::session::become_subreaper(false);
            }
        };
        let ready = self.successor_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        let mut child = command.spawn().map_err(|error| {
            give_up();
            ApiError::internal(&anyhow::anyhow!("cannot start the new process: {error}"))
        })?;
        let new_pid = child.id();
        self.progress.line(&format!(
            "restarting: pid {new_pid} is starting with the listening sockets"
        ));
        let deadline = tokio::time::sleep(HANDOVER_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut ready => break,
                () = &mut deadline => {
                    give_up();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ApiError::internal(&anyhow::anyhow!(
                        "the new process did not serve within {HANDOVER_TIMEOUT:?}; it was stopped and this one keeps serving"
                    )));
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        give_up();
                        return Err(ApiError::internal(&anyhow::anyhow!(
                            "the new process exited ({status}) before serving; this one keeps serving (its output is above)"
                        )));
                    }
                }
            }
        }
        // The successor serves. This process's control API stops accepting
        // at once, so that no command sent after `restart` reaches it (the
        // answer to this request still goes out: a graceful shutdown lets
        // requests in flight finish). Just after answering, it drains,
        // then exits, or (the one the user started) stays as the session's
        // parent and reaps it.
        drop(child);
        self.set_exit(Exit::HandedOver);
        self.close_api.notify_one();
        let controller = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            controller.stop.notify_waiters();
        });
        Ok(json!({ "old_pid": std::process::id(), "new_pid": new_pid }))
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
            .map_err(|error| ApiError::internal(&error.into()))?;
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

    fn progress_sink(&self) -> Arc<dyn lastmile_rollout::Progress> {
        Arc::new(ProgressSink(self.progress.clone()))
    }

    fn report_outcome(&self, outcome: &lastmile_rollout::DeploymentOutcome) {
        let _ = outcome;
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
