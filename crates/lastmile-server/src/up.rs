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
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use lastmile_host::HostHandle;
use lastmile_node::handover;
use lastmile_store::counted;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::control;
use crate::controller::{ControllerOptions, Progress, find_environment, lock};
use crate::error::ApiError;
use crate::local_app::{EXIT_DRAIN, LocalApp};
use crate::request::{ArtifactRef, DeployRequest};

/// Set in a process started by `lastmile restart`: the control address of
/// the process it takes over from.
pub const HANDOVER_FROM_ENV: &str = "LASTMILE_HANDOVER_FROM";

/// How long a restarted process may take to serve before the old one gives
/// up on it and keeps serving.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a new process waits for the one it takes over from to answer
/// that it serves (it answers at once; a hang means it is gone or stuck).
const PREDECESSOR_ANSWER: Duration = Duration::from_secs(30);

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

/// The process of `lastmile up`: its one app on the `local` host, and what
/// a stop, a restart and a handover to a restarted process need.
#[derive(Debug)]
struct UpProcess {
    app: LocalApp,
    /// `lastmile up`'s lock of the state directory, handed to a restarted
    /// process.
    up_lock: crate::up_lock::UpLock,
    control_addr: Mutex<Option<SocketAddr>>,
    /// The control API listener's descriptor, to hand to a restarted
    /// process.
    control_fd: Mutex<Option<RawFd>>,
    restarting: tokio::sync::Mutex<()>,
    stop: Notify,
    /// The control API stops accepting (a successor serves it now); the
    /// rest of this process stops on `stop`.
    close_api: Notify,
    successor_ready: Notify,
    exit: Mutex<Option<Exit>>,
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
    let app = LocalApp::open(
        ControllerOptions {
            spec,
            spec_file: options.loaded.file.clone(),
            state_dir: options.state_dir.clone(),
            secret_key_file: options.secret_key_file.clone(),
            listen_override: options.listen.map(|addr| (environment.clone(), addr)),
            secrets: None,
            store: None,
        },
        options.access_log,
        inherited,
        progress,
    )?;
    let loops = app.start_loops();
    let up = Arc::new(UpProcess {
        app,
        up_lock: options.lock,
        control_addr: Mutex::new(None),
        control_fd: Mutex::new(None),
        restarting: tokio::sync::Mutex::new(()),
        stop: Notify::new(),
        close_api: Notify::new(),
        successor_ready: Notify::new(),
        exit: Mutex::new(None),
    });
    let result = serve(
        &up,
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
    let exit = up.exit();
    for task in loops {
        task.abort();
    }
    up.wind_down(exit).await;
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
    up: &Arc<UpProcess>,
    environment: &str,
    artifact: Option<BuiltArtifact>,
    control: ControlListener,
    approved_by: Option<String>,
    local_actor: String,
) -> anyhow::Result<()> {
    // What a previous process served comes back first; then the new build
    // is deployed (nothing moves when it is the release already serving).
    let controller = up.app.controller();
    let resuming = controller.restore().await?;
    if resuming > 0 && artifact.is_some() {
        controller.progress().warn(
            "a canary the previous process was running resumes; the new build is not deployed now (run `lastmile deploy` after it ends)",
        );
    }
    if let Some(artifact) = artifact.filter(|_| resuming == 0) {
        let outcome = controller
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
        if outcome.status != lastmile_store::DeploymentStatus::Succeeded {
            let mut message = format!(
                "the deployment to {environment} failed: {}",
                outcome.error.as_deref().unwrap_or("no reason given")
            );
            for line in &outcome.last_lines {
                message.push_str("\n  ");
                message.push_str(line);
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
    controller.set_control_addr(control_addr);
    *lock(&up.control_addr) = Some(control_addr);
    *lock(&up.control_fd) = Some(std::os::fd::AsRawFd::as_raw_fd(&listener));
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
        controller.progress().line(&format!(
            "took over from the previous process (pid {}); it is draining",
            std::os::unix::process::parent_id()
        ));
    }
    let api_stop = up.clone();
    // The server's API and dashboard for this one app, beside the control
    // API; loopback callers need no token.
    let server = crate::server::Server::for_local(
        up.app.clone(),
        controller.progress().clone(),
        local_actor,
    )?;
    let routes = control::routes(controller.clone())
        .merge(process_routes(up.clone()))
        .merge(crate::web::local_routes(server));
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
    up.write_up_file(control_addr)?;
    up.banner(control_addr);

    tokio::select! {
        () = stop_requested() => up.set_exit(Exit::Stop),
        () = up.stopped() => {}
    }
    up.stop.notify_waiters();
    let _ = tokio::time::timeout(API_CLOSE, api).await;
    Ok(())
}

/// The control API's routes that act on this process: `lastmile restart`
/// and `down`, and the successor's word that it serves.
fn process_routes(up: Arc<UpProcess>) -> Router {
    Router::new()
        .route("/api/v1/restart", post(restart))
        .route("/api/v1/shutdown", post(shutdown))
        .route("/api/v1/handover/ready", post(handover_ready))
        .with_state(up)
}

async fn restart(State(up): State<Arc<UpProcess>>) -> Result<Json<Value>, ApiError> {
    up.restart().await.map(Json)
}

/// Answers what is about to stop (instances, listeners, the longest it may
/// take), then stops.
async fn shutdown(State(up): State<Arc<UpProcess>>) -> Result<Json<Value>, ApiError> {
    // A stop that reached a process handing over, or already draining
    // after a restart, would stop nothing that serves.
    if up.handing_over() {
        return Err(ApiError::conflict(
            "a restart is handing over to a new process; \
             run `lastmile down` again once `lastmile restart` has returned",
        ));
    }
    let plan = up.shutdown_plan().await;
    up.request_shutdown();
    Ok(Json(plan))
}

async fn handover_ready(State(up): State<Arc<UpProcess>>) -> Result<Json<Value>, ApiError> {
    up.handover_ready();
    Ok(Json(json!({ "draining": true })))
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
impl UpProcess {
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
    pub(crate) async fn shutdown_plan(&self) -> Value {
        let instances: Vec<Value> = self
            .app
            .host()
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
        let longest = API_CLOSE + EXIT_DRAIN + self.app.host().supervisor().longest_stop_grace();
        json!({
            "stopping": true,
            "pid": std::process::id(),
            "instances": instances,
            "listeners": self.app.host().listening_addrs(),
            "stop_within_ms": u64::try_from(longest.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Whether this process has handed over to a restarted one (it only
    /// drains now), or is handing over: a restart is under way.
    pub(crate) fn handing_over(&self) -> bool {
        *lock(&self.exit) == Some(Exit::HandedOver) || self.restarting.try_lock().is_err()
    }

    /// `lastmile down`.
    pub(crate) fn request_shutdown(&self) {
        self.set_exit(Exit::Stop);
        self.stop.notify_waiters();
    }

    /// The restarted process serves: let `restart` answer, then drain.
    pub(crate) fn handover_ready(&self) {
        self.successor_ready.notify_waiters();
    }

    fn write_up_file(&self, control: SocketAddr) -> anyhow::Result<()> {
        let path = self.app.controller().state_dir().join("up.json");
        let temp = self
            .app
            .controller()
            .state_dir()
            .join(format!("up.json.{}", std::process::id()));
        let body = json!({
            "pid": std::process::id(),
            "control": control,
            "app": self.app.controller().app(),
            "started_at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or_default(),
        });
        std::fs::write(&temp, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    fn remove_up_file_if_ours(&self) {
        let path = self.app.controller().state_dir().join("up.json");
        let ours = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|value| value["pid"] == std::process::id());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    fn banner(&self, control: SocketAddr) {
        for env in self.app.controller().environment_specs() {
            if let Some(addr) = self.app.host().bound_addr(&env.name) {
                self.app
                    .controller()
                    .progress()
                    .line(&format!("serving {} on http://{addr}", env.name));
            }
        }
        self.app.controller().progress().line(&format!(
            "control API and dashboard on http://{control} (loopback only, so no token is needed); \
             `lastmile status` shows what runs; Ctrl-C stops everything"
        ));
        if !self.app.controller().flags().current().0.is_empty() {
            self.app.controller().progress().line(&format!(
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
                .app
                .controller()
                .progress()
                .line("stopping: draining connections and instances"),
            Exit::HandedOver if is_handover() => self
                .app
                .controller()
                .progress()
                .line("handed over: draining connections, then exiting"),
            Exit::HandedOver => self
                .app
                .controller()
                .progress()
                .line("handed over: draining connections"),
        }
        self.app.drain_and_stop().await;
        if exit == Exit::Stop {
            self.remove_up_file_if_ours();
        }
    }

    /// `POST /api/v1/restart`: start the binary on disk with the listening
    /// sockets, wait until it serves, then drain this process.
    pub(crate) async fn restart(self: &Arc<Self>) -> Result<Value, ApiError> {
        let Ok(_guard) = self.restarting.try_lock() else {
            return Err(ApiError::conflict("a restart is already in progress"));
        };
        // A running canary is frozen and handed over (the new process
        // resumes it at the same step); any other deployment is waited for.
        let suspended = self.app.controller().suspend_canaries();
        let _deploy_guard = if suspended > 0 {
            self.app.controller().progress().line(&format!(
                "restarting: {} frozen; the new process resumes them",
                counted(suspended as u64, "running canary")
            ));
            None
        } else {
            Some(self.app.controller().hold_deployments().await)
        };
        let control = lock(&self.control_addr)
            .ok_or_else(|| ApiError::conflict("still starting; try again in a moment"))?;
        let exe = std::env::current_exe().map_err(|error| {
            ApiError::internal_message(format!("cannot find the lastmile binary: {error}"))
        })?;
        let mut command = std::process::Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(HANDOVER_FROM_ENV, control.to_string())
            .stdin(std::process::Stdio::null());
        handover::pass_listeners(
            &mut command,
            &handover::Handed {
                listeners: self.app.host().listener_fds(),
                control: *lock(&self.control_fd),
                lock: Some(self.up_lock.raw_fd()),
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
            self.app.controller().unsuspend_canaries();
            if session_parent {
                crate::session::become_subreaper(false);
            }
        };
        let ready = self.successor_ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        let mut child = command.spawn().map_err(|error| {
            give_up();
            ApiError::internal_message(format!("cannot start the new process: {error}"))
        })?;
        let new_pid = child.id();
        self.app.controller().progress().line(&format!(
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
                    return Err(ApiError::internal_message(format!(
                        "the new process did not serve within {HANDOVER_TIMEOUT:?}; it was stopped and this one keeps serving"
                    )));
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        give_up();
                        return Err(ApiError::internal_message(format!(
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
        let up = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            up.stop.notify_waiters();
        });
        Ok(json!({ "old_pid": std::process::id(), "new_pid": new_pid }))
    }
}
