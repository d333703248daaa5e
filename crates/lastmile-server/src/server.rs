//! `lastmile server`: the controller for many apps, fed by git.
//!
//! Each app in `server.yaml` is a repository. The server keeps a bare
//! mirror of it, polls it (and wakes at once on a verified webhook), and
//! for each new head of a watched branch: writes the commit's tree out,
//! runs its pipeline with the app's secrets, makes a release of the
//! artifact and deploys it to the first environment with the spec of that
//! same commit. A success promotes along the environment chain: at once
//! where `promote: auto`, after an approval where `promote: manual` or
//! `gates.approval: required`.
//!
//! Every app has its own controller (store, engine, `local` host); the
//! server's own store holds what spans apps: API tokens and secrets.

pub mod config;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use lastmile_artifact::BlobStore;
use lastmile_spec::{Promote, Spec};
use lastmile_store::{
    CommitRecord, CommitStatus, DeploymentStatus, SecretBox, SqliteStore, Store, now_millis,
};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

pub use config::{AppConfig, ServerConfig};

use crate::controller::{Controller, ControllerOptions, Progress, SecretLookup, lock, short};
use crate::error::ApiError;
use crate::local_app::LocalApp;
use crate::report::{AppOverview, Approval, Overview};
use crate::request::{ArtifactRef, DeployRequest};

/// Checked-out trees kept after their run (for a look after a failure).
const KEPT_CHECKOUTS: usize = 3;

/// SQLite page cache per app store, in KiB (the default is 2 MiB).
const APP_CACHE_KIB: u32 = 256;

/// Prepared statements kept per app store.
const APP_STATEMENTS: usize = 16;

/// Git operations running at once, across apps.
const GIT_SLOTS: usize = 4;

/// The server: apps, their watchers, the store of tokens and secrets.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    store: Arc<SqliteStore>,
    secret_box: Arc<SecretBox>,
    apps: BTreeMap<String, Arc<App>>,
    progress: Arc<dyn Progress>,
    stop: watch::Sender<bool>,
    /// Git work (fetch, commit lookup, writing a tree out) at once at most:
    /// each holds a blocking thread, and fifty apps polling together would
    /// otherwise hold fifty.
    git_slots: Arc<tokio::sync::Semaphore>,
    /// Pipelines at once (`max_builds`): fifty apps pushed at once build a
    /// few at a time instead of fighting over the CPUs.
    build_slots: Arc<tokio::sync::Semaphore>,
    /// Calls from loopback need no token (`lastmile up` only); they are
    /// recorded as made by this actor (`local:alice`).
    pub(crate) loopback_actor: Option<String>,
    /// The directory holding lastmile.yaml (`lastmile up` only): its git work tree, when it is
    /// in one, says which commit the app is built from, since nothing is polled.
    work_tree_dir: Option<PathBuf>,
}

/// One watched repository and what the server knows of it.
pub struct App {
    config: AppConfig,
    dir: PathBuf,
    store: Arc<SqliteStore>,
    /// Its controller over the `local` host, once it has deployed.
    local: Mutex<Option<LocalApp>>,
    loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    wake: Notify,
    /// A verified webhook woke the watcher (the next commits it finds are
    /// recorded as announced by it).
    hooked: std::sync::atomic::AtomicBool,
    pending: Mutex<BTreeMap<String, Pending>>,
    /// Serializes git work on the mirror (each use runs `git` in a blocking
    /// thread).
    mirror: Arc<Mutex<()>>,
    last_error: Mutex<Option<String>>,
    drift: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// A deployment waiting for someone to approve it.
#[derive(Debug, Clone)]
struct Pending {
    release: String,
    version: String,
    commit: Option<String>,
    spec: Spec,
    source: String,
    since: i64,
}

impl Server {
    /// Opens the state, the key file (created 0600 at first start) and one
    /// controller per app that has deployed before.
    pub fn open(config: ServerConfig, progress: Arc<dyn Progress>) -> anyhow::Result<Arc<Server>> {
        std::fs::create_dir_all(&config.state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}",
                config.state_dir.display()
            )
        })?;
        let (store, _) = SqliteStore::open(&config.state_dir)
            .with_context(|| format!("cannot open the state in {}", config.state_dir.display()))?;
        let secret_box = SecretBox::open_or_create(&config.state_dir.join("secret.key"))
            .context("cannot open the secrets key")?;
        let store = Arc::new(store);
        let mut apps = BTreeMap::new();
        for app in &config.apps {
            let dir = config.state_dir.join("apps").join(&app.name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let (app_store, report) = SqliteStore::open(&dir).with_context(|| {
                format!("cannot open the state of {} in {}", app.name, dir.display())
            })?;
            for run in report.interrupted_runs {
                progress.warn(&format!(
                    "{}: run #{run} was interrupted by a stop",
                    app.name
                ));
            }
            // Memory grows with the number of apps: small caches per app.
            app_store.limit_memory(APP_CACHE_KIB, APP_STATEMENTS)?;
            apps.insert(
                app.name.clone(),
                App::new(app.clone(), dir, Arc::new(app_store), None),
            );
        }
        let (stop, _) = watch::channel(false);
        let max_builds = config.max_builds.max(1);
        Ok(Arc::new(Server {
            config,
            store,
            secret_box: Arc::new(secret_box),
            apps,
            progress,
            stop,
            git_slots: Arc::new(tokio::sync::Semaphore::new(GIT_SLOTS)),
            build_slots: Arc::new(tokio::sync::Semaphore::new(max_builds)),
            loopback_actor: None,
            work_tree_dir: None,
        }))
    }

    /// The server of `lastmile up`: its one app, built from the directory
    /// holding lastmile.yaml (not fetched from git), with the API and
    /// dashboard open to loopback callers, whose actions are recorded as
    /// `local_actor` (the person at this machine, `local:alice`).
    pub(crate) fn for_local(
        local: LocalApp,
        progress: Arc<dyn Progress>,
        local_actor: String,
    ) -> anyhow::Result<Arc<Server>> {
        let controller = local.controller().clone();
        let state_dir = controller.state_dir().to_path_buf();
        let secret_box = SecretBox::open_or_create(controller.secret_key_file())
            .context("cannot open the secrets key")?;
        // The state directory may be anywhere (`--state-dir`); the spec's directory is the app.
        let spec_dir = controller.spec_dir();
        let project_dir = std::path::absolute(spec_dir).unwrap_or_else(|_| spec_dir.to_path_buf());
        let app = AppConfig {
            name: controller.app().to_owned(),
            repo: project_dir.display().to_string(),
            branches: Vec::new(),
            path: PathBuf::from("."),
            poll_interval: Duration::from_secs(3600),
            webhook_secret_env: None,
            self_heal: false,
        };
        let store = controller.store().clone();
        let mut apps = BTreeMap::new();
        apps.insert(
            app.name.clone(),
            App::new(app.clone(), state_dir.clone(), store.clone(), Some(local)),
        );
        let (stop, _) = watch::channel(false);
        let server = Arc::new(Server {
            config: ServerConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                state_dir,
                apps: vec![app.clone()],
                max_builds: 1,
                tls: None,
            },
            store,
            secret_box: Arc::new(secret_box),
            apps,
            progress,
            stop,
            git_slots: Arc::new(tokio::sync::Semaphore::new(GIT_SLOTS)),
            build_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            loopback_actor: Some(local_actor),
            work_tree_dir: Some(project_dir),
        });
        controller.set_secrets(server.secret_lookup(&app.name));
        Ok(server)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The server's own store (tokens, secrets, audit).
    pub fn store(&self) -> &Arc<SqliteStore> {
        &self.store
    }

    /// Apps by name.
    pub fn apps(&self) -> &BTreeMap<String, Arc<App>> {
        &self.apps
    }

    /// One app, or a 404 naming the ones there are.
    pub fn app(&self, name: &str) -> Result<&Arc<App>, ApiError> {
        self.apps.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "no app `{name}` on this server; it has: {}",
                self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Brings back what each app served, then starts the watchers.
    pub async fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for app in self.apps.values() {
            if let Err(error) = self.restore_app(app).await {
                self.progress
                    .warn(&format!("{}: cannot restore: {error:#}", app.config.name));
            }
            tasks.push(tokio::spawn(watch_app(self.clone(), app.clone())));
        }
        tasks.push(tokio::spawn(drift_loop(self.clone())));
        tasks
    }

    /// Stops watchers, then every app's instances and routers.
    pub async fn shut_down(&self) {
        let _ = self.stop.send(true);
        for app in self.apps.values() {
            for task in lock(&app.loops).drain(..) {
                task.abort();
            }
            let local = lock(&app.local).clone();
            if let Some(local) = local {
                local.drain_and_stop().await;
            }
        }
    }

    /// Runs blocking git work on a blocking thread, a few at a time.
    async fn git<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _slot = self
            .git_slots
            .acquire()
            .await
            .context("the server is stopping")?;
        tokio::task::spawn_blocking(work).await?
    }

    /// The value of one secret of `app`, decrypted.
    pub fn secret_value(&self, app: &str, name: &str) -> Option<String> {
        let (nonce, ciphertext) = self.store.get_secret(app, name).ok()??;
        let plain = self
            .secret_box
            .open(&format!("{app}/{name}"), &nonce, &ciphertext)
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// Stores a secret, encrypted; the value is never logged or returned.
    pub fn set_secret(
        &self,
        app: &str,
        name: &str,
        value: &str,
        actor: &str,
    ) -> Result<(), ApiError> {
        self.app(app)?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            || name.as_bytes()[0].is_ascii_digit()
        {
            return Err(ApiError::bad_request(format!(
                "secret name `{name}` must be an environment variable name: A-Z, 0-9 and _, not starting with a digit"
            )));
        }
        let (nonce, ciphertext) = self
            .secret_box
            .seal(&format!("{app}/{name}"), value.as_bytes());
        self.store
            .put_secret(app, name, &nonce, &ciphertext, actor)
            .map_err(|error| ApiError::internal(&error))?;
        Ok(())
    }

    fn secret_lookup(self: &Arc<Self>, app: &str) -> SecretLookup {
        let server = Arc::downgrade(self);
        let app = app.to_owned();
        SecretLookup(Arc::new(move |name: &str| {
            server.upgrade()?.secret_value(&app, name)
        }))
    }

    /// The controller of an app, once it has deployed (or restored).
    pub fn controller(&self, app: &str) -> Result<Arc<Controller>, ApiError> {
        let app = self.app(app)?;
        app.controller().ok_or_else(|| {
            ApiError::conflict(format!(
                "app `{}` has not deployed anything yet; push a commit to {} or wait for the first build",
                app.config.name,
                app.config.shown_repo()
            ))
        })
    }

    fn ensure_controller(
        self: &Arc<Self>,
        app: &Arc<App>,
        spec: &Spec,
        source: &str,
    ) -> anyhow::Result<Arc<Controller>> {
        let mut slot = lock(&app.local);
        if let Some(local) = slot.as_ref() {
            return Ok(local.controller().clone());
        }
        let spec_file = write_spec(app, source)?;
        let local = LocalApp::open(
            ControllerOptions {
                spec: spec.clone(),
                spec_file,
                state_dir: app.dir.clone(),
                secret_key_file: app.dir.join(lastmile_store::STATE_DIR_KEY_FILE),
                listen_override: None,
                secrets: Some(self.secret_lookup(&app.config.name)),
                store: Some(app.store.clone()),
            },
            false,
            BTreeMap::new(),
            Arc::new(AppProgress {
                app: app.config.name.clone(),
                inner: self.progress.clone(),
            }),
        )?;
        *lock(&app.loops) = local.start_loops();
        let controller = local.controller().clone();
        *slot = Some(local);
        Ok(controller)
    }

    /// Starts again what an app's store says it served.
    async fn restore_app(self: &Arc<Self>, app: &Arc<App>) -> anyhow::Result<()> {
        let spec_file = app.dir.join("lastmile.yaml");
        let Ok(source) = std::fs::read_to_string(&spec_file) else {
            return Ok(());
        };
        let (spec, _) = lastmile_spec::parse(&spec_file.display().to_string(), &source)
            .map_err(|errors| anyhow::anyhow!("{}", errors.render(false)))?;
        let controller = self.ensure_controller(app, &spec, &source)?;
        controller.restore().await?;
        let pending = load_pending(app);
        if !pending.is_empty() {
            self.progress.line(&format!(
                "{}: {} still wait for approval: {}",
                app.config.name,
                lastmile_store::counted(pending.len() as u64, "deployment"),
                pending.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        *lock(&app.pending) = pending;
        Ok(())
    }

    /// Builds and deploys one commit: the watcher's work.
    async fn process_commit(self: &Arc<Self>, app: &Arc<App>, sha: &str) -> anyhow::Result<()> {
        let name = app.config.name.clone();
        let checkout = app.dir.join("checkouts").join(sha);
        let _ = std::fs::remove_dir_all(&checkout);
        let mirror = app.mirror.clone();
        let sha_owned = sha.to_owned();
        let destination = checkout.clone();
        let url = app.config.repo.clone();
        let mirror_dir = app.dir.join("mirror.git");
        self.git(move || {
            let _guard = lock(&mirror);
            lastmile_git::Mirror::open_or_clone(&url, &mirror_dir)?
                .materialize(&sha_owned, &destination)?;
            anyhow::Ok(())
        })
        .await?;
        prune_checkouts(&app.dir.join("checkouts"), KEPT_CHECKOUTS);

        let spec_dir = checkout.join(&app.config.path);
        let spec_path = spec_dir.join(lastmile_spec::SPEC_FILE);
        let source = std::fs::read_to_string(&spec_path).map_err(|error| {
            anyhow::anyhow!(
                "commit {} has no {} ({error}); add it or fix `path` in server.yaml",
                short(sha),
                Path::new(&app.config.path)
                    .join(lastmile_spec::SPEC_FILE)
                    .display()
            )
        })?;
        let (spec, _) = lastmile_spec::parse(&spec_path.display().to_string(), &source)
            .map_err(|errors| anyhow::anyhow!("{}", errors.render(false)))?;
        if spec.app != name {
            anyhow::bail!(
                "lastmile.yaml of commit {} says `app: {}` but server.yaml names this repository `{name}`; make them agree",
                short(sha),
                spec.app
            );
        }
        let controller = self.ensure_controller(app, &spec, &source)?;

        // The pipeline, in the written-out tree, with the app's secrets.
        app.store
            .update_commit(&name, sha, CommitStatus::Running, None, None, None)?;
        self.progress.line(&format!(
            "{name}: building {} ({})",
            short(sha),
            first_line_of_commit(app, sha)
        ));
        // Wait for a build slot; the commit stays `running` meanwhile.
        let build_slot = self
            .build_slots
            .clone()
            .acquire_owned()
            .await
            .context("the server is stopping")?;
        let blobs = BlobStore::open(&app.dir)?;
        let mut options = lastmile_pipeline::RunOptions::new(app.dir.clone());
        options.in_place = true;
        options.commit = Some(sha.to_owned());
        options.actor = format!("git:{name}");
        let server = self.clone();
        let lookup_app = name.clone();
        let environment = move |secret: &str| {
            server
                .secret_value(&lookup_app, secret)
                .or_else(|| std::env::var(secret).ok())
        };
        let mut stop = self.stop.subscribe();
        let reporter = CommitReporter {
            store: app.store.clone(),
            app: name.clone(),
            sha: sha.to_owned(),
            inner: lastmile_pipeline::PlainReporter::default(),
        };
        let summary = lastmile_pipeline::run_pipeline_with_environment(
            &spec,
            &spec_dir,
            app.store.as_ref(),
            &blobs,
            &options,
            &environment,
            &reporter,
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
        )
        .await?;
        drop(build_slot);
        let run_id = summary.run_id;
        let succeeded = summary.status == lastmile_store::RunStatus::Succeeded;
        if succeeded && (spec.artifact.is_none() || spec.environments.is_empty()) {
            // CI only: built and tested, nothing to deploy.
            app.store
                .update_commit(&name, sha, CommitStatus::Built, Some(run_id), None, None)?;
            self.progress.line(&format!(
                "{name}: {} built; lastmile.yaml has no {}, so nothing is deployed",
                short(sha),
                if spec.artifact.is_none() {
                    "artifact"
                } else {
                    "environments"
                }
            ));
            return Ok(());
        }
        let Some(artifact) = summary.artifact.filter(|_| succeeded) else {
            let reason = summary
                .failure
                .map(|failure| format!("step {} {}", failure.step, failure.reason))
                .unwrap_or_else(|| "the run made no artifact (add `artifact.paths`)".to_owned());
            app.store.update_commit(
                &name,
                sha,
                CommitStatus::Failed,
                Some(run_id),
                None,
                Some(&reason),
            )?;
            self.progress.warn(&format!(
                "{name}: {} failed its pipeline: {reason}; no release made",
                short(sha)
            ));
            return Ok(());
        };
        app.store
            .update_commit(&name, sha, CommitStatus::Built, Some(run_id), None, None)?;
        let Some(first) = spec.environments.first().map(|env| env.name.clone()) else {
            return Ok(());
        };
        let request = DeployRequest {
            environment: first.clone(),
            release: None,
            artifact: Some(ArtifactRef {
                id: artifact.id.clone(),
                run_id,
            }),
            approved_by: None,
        };
        self.deploy_chain(
            app,
            &controller,
            request,
            spec,
            source,
            Some(sha.to_owned()),
            "git",
        )
        .await;
        Ok(())
    }

    /// Deploys to one environment, then on along the chain while promotion
    /// is automatic; stops at a gate, leaving an approval pending.
    #[expect(clippy::too_many_arguments, reason = "one deployment's whole context")]
    async fn deploy_chain(
        self: &Arc<Self>,
        app: &Arc<App>,
        controller: &Arc<Controller>,
        mut request: DeployRequest,
        spec: Spec,
        source: String,
        commit: Option<String>,
        actor: &str,
    ) {
        let name = app.config.name.clone();
        loop {
            let Some(env) = spec
                .environments
                .iter()
                .find(|env| env.name == request.environment)
                .cloned()
            else {
                return;
            };
            if env.gates.approval_required && request.approved_by.is_none() {
                // The release must exist to be approved later.
                let release = match controller.release_for(&request, &spec, &source) {
                    Ok(release) => release,
                    Err(error) => {
                        self.progress.warn(&format!("{name}: {}", error.message()));
                        return;
                    }
                };
                self.add_pending(
                    app,
                    &env.name,
                    &release,
                    commit.clone(),
                    &spec,
                    &source,
                    actor,
                );
                return;
            }
            // The spec being deployed becomes the app's spec: what a deploy
            // or rollback by hand reads, and what a restart restores with.
            if let Err(error) = write_spec(app, &source) {
                self.progress.warn(&format!("{name}: {error:#}"));
                return;
            }
            let outcome = controller
                .deploy_with_spec(request.clone(), Some((spec.clone(), source.clone())))
                .await;
            if let Err(error) = &outcome {
                self.progress.warn(&format!(
                    "{name}: deploying to {} failed: {}",
                    env.name,
                    error.message()
                ));
            }
            let succeeded = outcome
                .as_ref()
                .is_ok_and(|outcome| outcome.status == DeploymentStatus::Succeeded);
            let release = outcome
                .as_ref()
                .ok()
                .map(|outcome| outcome.to_release.clone());
            if let Some(sha) = &commit {
                let commit_status = match &outcome {
                    Ok(_) if succeeded => CommitStatus::Deployed,
                    // A failed deployment that had a release to return to
                    // put traffic back on it: that is a rollback of this
                    // commit.
                    Ok(outcome)
                        if outcome.status == DeploymentStatus::Failed
                            && outcome.from_release.is_some() =>
                    {
                        CommitStatus::RolledBack
                    }
                    _ => CommitStatus::Failed,
                };
                let error = match &outcome {
                    Ok(outcome) => outcome.error.clone(),
                    Err(error) => Some(error.message().to_owned()),
                };
                let _ = app.store.update_commit(
                    &name,
                    sha,
                    commit_status,
                    None,
                    release.as_deref(),
                    error.as_deref(),
                );
            }
            let (true, Some(release)) = (succeeded, release) else {
                return;
            };
            // Promotion to the next environment.
            let position = spec.environments.iter().position(|e| e.name == env.name);
            let Some(next) = position.and_then(|p| spec.environments.get(p + 1)).cloned() else {
                return;
            };
            let wants_approval = next.promote == Promote::Manual || next.gates.approval_required;
            if wants_approval {
                let record = match app.store.get_release(&release) {
                    Ok(Some(record)) => record,
                    _ => return,
                };
                self.add_pending(
                    app,
                    &next.name,
                    &record,
                    commit.clone(),
                    &spec,
                    &source,
                    actor,
                );
                return;
            }
            request = DeployRequest {
                environment: next.name.clone(),
                release: Some(release),
                artifact: None,
                approved_by: None,
            };
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one pending deployment's whole context"
    )]
    fn add_pending(
        &self,
        app: &App,
        environment: &str,
        release: &lastmile_store::ReleaseRecord,
        commit: Option<String>,
        spec: &Spec,
        source: &str,
        actor: &str,
    ) {
        let _ = app.store.record_event(
            "approval.requested",
            &format!("environment/{environment}"),
            actor,
            &json!({ "release": release.id, "version": release.version, "commit": commit }),
        );
        self.progress.line(&format!(
            "{}: release {} waits for approval to go to {environment} (dashboard, or POST /api/v1/apps/{}/environments/{environment}/approve)",
            app.config.name,
            release.label(),
            app.config.name
        ));
        let mut pending = lock(&app.pending);
        pending.insert(
            environment.to_owned(),
            Pending {
                release: release.id.clone(),
                version: release.version.clone(),
                commit,
                spec: spec.clone(),
                source: source.to_owned(),
                since: now_millis(),
            },
        );
        if let Err(error) = save_pending(app, &pending) {
            self.progress
                .warn(&format!("{}: {error:#}", app.config.name));
        }
    }

    /// Approves the deployment waiting for `environment`; it runs in the
    /// background (and promotes on along the chain).
    pub fn approve(
        self: &Arc<Self>,
        app_name: &str,
        environment: &str,
        actor: &str,
    ) -> Result<Value, ApiError> {
        let app = self.app(app_name)?.clone();
        let controller = self.controller(app_name)?;
        // The removal is saved before the deployment starts: a crash after
        // this may lose the approval (it is asked again by a new push or a
        // deploy by hand), but can never deploy and still keep it pending.
        let pending = {
            let mut waiting = lock(&app.pending);
            let pending = waiting.remove(environment).ok_or_else(|| {
                ApiError::conflict(format!(
                    "nothing waits for approval in {app_name}/{environment}"
                ))
            })?;
            if let Err(error) = save_pending(&app, &waiting) {
                waiting.insert(environment.to_owned(), pending);
                return Err(ApiError::internal_message(format!("{error:#}")));
            }
            pending
        };
        let _ = app.store.record_event(
            "approval.given",
            &format!("environment/{environment}"),
            actor,
            &json!({ "release": pending.release, "version": pending.version, "commit": pending.commit }),
        );
        self.progress.line(&format!(
            "{app_name}: {actor} approved release {} for {environment}",
            lastmile_store::release_label(Some(&pending.version), &pending.release)
        ));
        let server = self.clone();
        let answer = json!({
            "app": app_name,
            "environment": environment,
            "release": pending.release,
            "version": pending.version,
            "approved_by": actor,
            "deploying": true,
        });
        let actor = actor.to_owned();
        let environment = environment.to_owned();
        tokio::spawn(async move {
            let request = DeployRequest {
                environment,
                release: Some(pending.release.clone()),
                artifact: None,
                approved_by: Some(actor.clone()),
            };
            server
                .deploy_chain(
                    &app,
                    &controller,
                    request,
                    pending.spec,
                    pending.source,
                    pending.commit,
                    &actor,
                )
                .await;
        });
        Ok(answer)
    }

    /// Deployments waiting for approval, per app.
    pub fn pending(&self, app: &str) -> Result<Vec<Approval>, ApiError> {
        let app = self.app(app)?;
        let pending = lock(&app.pending);
        Ok(pending
            .iter()
            .map(|(environment, pending)| Approval {
                environment: environment.clone(),
                release: pending.release.clone(),
                version: pending.version.clone(),
                commit: pending.commit.clone(),
                since_ms: pending.since,
            })
            .collect())
    }

    /// The apps overview: each environment's live release and health.
    pub async fn overview(&self) -> Overview {
        let mut apps = Vec::new();
        for (name, app) in &self.apps {
            let status = match app.controller() {
                Some(controller) => controller.status(Duration::from_secs(60)).await.ok(),
                None => None,
            };
            let (last_commit, commit_error) = match self.latest_commit(name).await {
                Ok(commit) => (commit, None),
                Err(failure) => (None, Some(failure.message().to_owned())),
            };
            apps.push(AppOverview {
                name: name.clone(),
                repo: app.config.shown_repo(),
                branches: app.config.branches.clone(),
                last_commit,
                last_error: lock(&app.last_error).clone().or(commit_error),
                drift: lock(&app.drift).clone(),
                pending: self.pending(name).ok(),
                status,
            });
        }
        Overview { apps }
    }

    /// Drift of an app: environment → what differs.
    pub fn drift(&self, app: &str) -> Result<BTreeMap<String, String>, ApiError> {
        Ok(lock(&self.app(app)?.drift).clone())
    }

    /// A webhook for `app`: verified with its secret, then the watcher is
    /// woken. Returns what was accepted.
    pub fn webhook(
        &self,
        app_name: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        use lastmile_git::webhook::WebhookError;
        let app = self.app(app_name).ok();
        let secret = app
            .and_then(|app| app.config.webhook_secret_env.as_ref())
            .and_then(|var| std::env::var(var).ok())
            .filter(|secret| !secret.is_empty());
        let (Some(app), Some(secret)) = (app, secret) else {
            // The route is open: an unknown app, and a known one with no
            // secret to verify against, are answered exactly like a known
            // one whose signature does not verify, so the answer tells no
            // one which apps this server has or how they are set up. The
            // request is checked against a fresh random secret, which
            // nothing can have signed; only the event log says why.
            let unguessable = lastmile_store::generate_token();
            let message = match lastmile_git::webhook::verify(headers, body, &unguessable) {
                Err(WebhookError::Unauthorized(message)) => message,
                _ => "the signature does not match the body".to_owned(),
            };
            let reason = match app {
                None => format!("no app `{app_name}` on this server"),
                Some(app) => match &app.config.webhook_secret_env {
                    Some(var) => format!(
                        "app `{app_name}` has no webhook secret: `{var}` is unset or empty in the server's environment"
                    ),
                    None => format!(
                        "app `{app_name}` has no webhook secret: set `webhook_secret_env` in server.yaml"
                    ),
                },
            };
            let _ = self.store.record_event(
                "webhook.refused",
                &format!("app/{app_name}"),
                "webhook",
                &json!({ "reason": reason }),
            );
            return Err(ApiError::unauthorized(format!(
                "webhook refused: {message}"
            )));
        };
        match lastmile_git::webhook::verify(headers, body, &secret) {
            Ok(push) => {
                let _ = app.store.record_event(
                    "webhook.received",
                    &format!("app/{app_name}"),
                    &format!("webhook:{:?}", push.provider).to_lowercase(),
                    &json!({ "branch": push.branch, "after": push.after }),
                );
                let watched = push.branch.as_deref().is_some_and(|branch| {
                    lastmile_git::branch_matches(branch, &app.config.branches)
                });
                if watched && !push.deleted {
                    app.hooked.store(true, std::sync::atomic::Ordering::SeqCst);
                    app.wake.notify_one();
                }
                Ok(
                    json!({ "accepted": true, "triggered": watched && !push.deleted, "branch": push.branch, "after": push.after }),
                )
            }
            Err(WebhookError::Unauthorized(message)) => {
                let _ = self.store.record_event(
                    "webhook.refused",
                    &format!("app/{app_name}"),
                    "webhook",
                    &json!({ "reason": message }),
                );
                Err(ApiError::unauthorized(format!(
                    "webhook refused: {message}"
                )))
            }
            Err(WebhookError::Ignored(message)) => {
                Ok(json!({ "accepted": false, "ignored": message }))
            }
            Err(WebhookError::BadPayload(message)) => Err(ApiError::bad_request(message)),
        }
    }

    /// Commits the watcher has seen, newest first.
    pub fn commits(&self, app: &str, limit: usize) -> Result<Vec<CommitRecord>, ApiError> {
        let entry = self.app(app)?;
        entry
            .store
            .list_commits(app, limit)
            .map_err(|error| ApiError::internal(&error))
    }

    /// The commit an app is at: for `lastmile up`, the HEAD of the work tree
    /// holding lastmile.yaml (read now; `None` outside git or before the first
    /// commit); for a server, the newest commit seen on its watched branches.
    pub async fn latest_commit(&self, app: &str) -> Result<Option<CommitRecord>, ApiError> {
        let Some(dir) = self.work_tree_dir.clone() else {
            return Ok(self.commits(app, 1)?.into_iter().next());
        };
        let app = app.to_owned();
        let tree = tokio::task::spawn_blocking(move || lastmile_git::work_tree(&dir))
            .await
            .map_err(|error| ApiError::internal_message(format!("reading git stopped: {error}")))?
            .map_err(|error| ApiError::internal(&error))?;
        Ok(tree.and_then(|tree| {
            let head = tree.head?;
            Some(CommitRecord {
                app,
                sha: head.sha,
                branch: tree.branch.unwrap_or_default(),
                committed_at: head.time_ms,
                author: head.author,
                subject: head.subject,
                seen_at: head.time_ms,
                source: "work-tree".to_owned(),
                status: CommitStatus::CheckedOut,
                run_id: None,
                release_id: None,
                error: None,
            })
        }))
    }

    /// The app's own store (runs, releases, deployments, events).
    pub fn app_store(&self, app: &str) -> Result<Arc<SqliteStore>, ApiError> {
        Ok(self.app(app)?.store.clone())
    }
}

impl App {
    /// Its controller, once it has deployed (or restored).
    fn controller(&self) -> Option<Arc<Controller>> {
        lock(&self.local)
            .as_ref()
            .map(|local| local.controller().clone())
    }

    fn new(
        config: AppConfig,
        dir: PathBuf,
        store: Arc<SqliteStore>,
        local: Option<LocalApp>,
    ) -> Arc<App> {
        Arc::new(App {
            config,
            dir,
            store,
            local: Mutex::new(local),
            loops: Mutex::new(Vec::new()),
            wake: Notify::new(),
            hooked: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(BTreeMap::new()),
            mirror: Arc::new(Mutex::new(())),
            last_error: Mutex::new(None),
            drift: Mutex::new(BTreeMap::new()),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }
}

/// Polls one repository (and wakes on webhooks); processes each new head.
async fn watch_app(server: Arc<Server>, app: Arc<App>) {
    let name = app.config.name.clone();
    let mut stop = server.stop.subscribe();
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                () = tokio::time::sleep(app.config.poll_interval) => {}
                () = app.wake.notified() => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        let starting = first;
        first = false;
        let source = if app.hooked.swap(false, std::sync::atomic::Ordering::SeqCst) {
            "webhook"
        } else {
            "poll"
        };
        let heads = match fetch(&server, &app).await {
            Ok(heads) => {
                *lock(&app.last_error) = None;
                heads
            }
            Err(error) => {
                let message = format!("{error:#}");
                let previous = lock(&app.last_error).replace(message.clone());
                if previous.as_deref() != Some(message.as_str()) {
                    server.progress.warn(&format!("{name}: {message}"));
                }
                continue;
            }
        };
        for head in heads {
            if !lastmile_git::branch_matches(&head.branch, &app.config.branches) {
                continue;
            }
            // A commit the previous process was building when it stopped
            // is built again; any other commit already seen is done.
            let interrupted = match app.store.get_commit(&name, &head.sha) {
                Ok(Some(commit))
                    if starting
                        && matches!(
                            commit.status,
                            CommitStatus::Seen | CommitStatus::Running | CommitStatus::Built
                        ) =>
                {
                    Some(commit.status)
                }
                Ok(Some(_)) | Err(_) => continue,
                Ok(None) => None,
            };
            if let Some(status) = interrupted {
                server.progress.line(&format!(
                    "{name}: commit {} was {status} when lastmile stopped; building it again",
                    short(&head.sha)
                ));
            } else {
                let info = {
                    let mirror = app.mirror.clone();
                    let sha = head.sha.clone();
                    let url = app.config.repo.clone();
                    let mirror_dir = app.dir.join("mirror.git");
                    server
                        .git(move || {
                            let _guard = lock(&mirror);
                            Ok(lastmile_git::Mirror::open_or_clone(&url, &mirror_dir)?
                                .commit(&sha)?)
                        })
                        .await
                };
                let Ok(info) = info else { continue };
                let record = CommitRecord {
                    app: name.clone(),
                    sha: head.sha.clone(),
                    branch: head.branch.clone(),
                    committed_at: info.time_ms,
                    author: info.author.clone(),
                    subject: info.subject.clone(),
                    seen_at: now_millis(),
                    source: source.to_owned(),
                    status: CommitStatus::Seen,
                    run_id: None,
                    release_id: None,
                    error: None,
                };
                if !matches!(app.store.record_commit(&record), Ok(true)) {
                    continue;
                }
                server.progress.line(&format!(
                    "{name}: new commit {} on {}: {}",
                    short(&head.sha),
                    head.branch,
                    info.subject
                ));
            }
            if let Err(error) = server.process_commit(&app, &head.sha).await {
                let message = format!("{error:#}");
                server
                    .progress
                    .warn(&format!("{name}: {}: {message}", short(&head.sha)));
                let _ = app.store.update_commit(
                    &name,
                    &head.sha,
                    CommitStatus::Failed,
                    None,
                    None,
                    Some(&message),
                );
            }
        }
    }
}

async fn fetch(server: &Server, app: &Arc<App>) -> anyhow::Result<Vec<lastmile_git::Head>> {
    let mirror = app.mirror.clone();
    let url = app.config.repo.clone();
    let dir = app.dir.join("mirror.git");
    server
        .git(move || {
            let _guard = lock(&mirror);
            let heads = lastmile_git::Mirror::open_or_clone(&url, &dir)?.fetch()?;
            anyhow::Ok(heads)
        })
        .await
}

/// Every few seconds, compares what each environment should run with what
/// runs; reports the difference and, with `self_heal`, restores it.
async fn drift_loop(server: Arc<Server>) {
    let mut stop = server.stop.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        for app in server.apps.values() {
            let Some(controller) = app.controller() else {
                continue;
            };
            let drift = controller.drift().await;
            let mut known = lock(&app.drift).clone();
            for (environment, what) in &drift {
                if known.get(environment) != Some(what) {
                    server.progress.warn(&format!(
                        "{}: drift in {environment}: {what}",
                        app.config.name
                    ));
                    let _ = app.store.record_event(
                        "drift.detected",
                        &format!("environment/{environment}"),
                        "server",
                        &json!({ "drift": what, "self_heal": app.config.self_heal }),
                    );
                }
            }
            known.clone_from(&drift);
            *lock(&app.drift) = known;
            if app.config.self_heal && !drift.is_empty() {
                for environment in drift.keys() {
                    match controller.heal(environment).await {
                        Ok(true) => {
                            server.progress.line(&format!(
                                "{}: self-heal restored {environment}",
                                app.config.name
                            ));
                            let _ = app.store.record_event(
                                "drift.healed",
                                &format!("environment/{environment}"),
                                "server",
                                &json!({}),
                            );
                        }
                        Ok(false) => {}
                        Err(error) => server.progress.warn(&format!(
                            "{}: self-heal of {environment} failed: {}",
                            app.config.name,
                            error.message()
                        )),
                    }
                }
            }
        }
    }
}

/// Writes the spec of what the app deploys to `lastmile.yaml` in its
/// state directory, atomically.
fn write_spec(app: &App, source: &str) -> anyhow::Result<PathBuf> {
    let path = app.dir.join("lastmile.yaml");
    let temp = app.dir.join("lastmile.yaml.tmp");
    std::fs::write(&temp, source).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Pending approvals survive a restart: `pending.json` in the app's state,
/// replaced atomically.
fn save_pending(app: &App, pending: &BTreeMap<String, Pending>) -> anyhow::Result<()> {
    let rows: Vec<Value> = pending
        .iter()
        .map(|(environment, p)| {
            json!({
                "environment": environment,
                "release": p.release,
                "version": p.version,
                "commit": p.commit,
                "source": p.source,
                "since": p.since,
            })
        })
        .collect();
    let path = app.dir.join("pending.json");
    let temp = app.dir.join("pending.json.tmp");
    serde_json::to_vec_pretty(&rows)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&temp, bytes))
        .and_then(|()| std::fs::rename(&temp, &path))
        .with_context(|| format!("cannot save pending approvals to {}", path.display()))
}

fn load_pending(app: &App) -> BTreeMap<String, Pending> {
    let path = app.dir.join("pending.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
    let mut pending = BTreeMap::new();
    for row in rows {
        let (Some(environment), Some(release), Some(source)) = (
            row["environment"].as_str(),
            row["release"].as_str(),
            row["source"].as_str(),
        ) else {
            continue;
        };
        let Ok((spec, _)) = lastmile_spec::parse("lastmile.yaml", source) else {
            continue;
        };
        pending.insert(
            environment.to_owned(),
            Pending {
                release: release.to_owned(),
                version: row["version"].as_str().unwrap_or_default().to_owned(),
                commit: row["commit"].as_str().map(str::to_owned),
                spec,
                source: source.to_owned(),
                since: row["since"].as_i64().unwrap_or_default(),
            },
        );
    }
    pending
}

fn first_line_of_commit(app: &App, sha: &str) -> String {
    app.store
        .get_commit(&app.config.name, sha)
        .ok()
        .flatten()
        .map(|commit| commit.subject)
        .unwrap_or_default()
}

fn prune_checkouts(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    entries.sort();
    let excess = entries.len().saturating_sub(keep + 1);
    for (_, path) in entries.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Prints the run like `lastmile run` does, and links the commit to its
/// run as soon as the run exists (so its live logs can be followed).
struct CommitReporter {
    store: Arc<SqliteStore>,
    app: String,
    sha: String,
    inner: lastmile_pipeline::PlainReporter,
}

impl lastmile_pipeline::Reporter for CommitReporter {
    fn run_started(&self, run: lastmile_store::RunId, app: &str, steps: &[String]) {
        let _ = self.store.update_commit(
            &self.app,
            &self.sha,
            CommitStatus::Running,
            Some(run),
            None,
            None,
        );
        self.inner.run_started(run, app, steps);
    }
    fn step_started(&self, step: &str, attempt: u32) {
        self.inner.step_started(step, attempt);
    }
    fn step_retrying(&self, step: &str, attempt: u32, max_attempts: u32, reason: &str) {
        self.inner
            .step_retrying(step, attempt, max_attempts, reason);
    }
    fn step_output(&self, step: &str, stream: lastmile_store::LogStream, line: &str) {
        self.inner.step_output(step, stream, line);
    }
    fn step_finished(&self, step: &lastmile_pipeline::StepSummary) {
        self.inner.step_finished(step);
    }
    fn step_cached(&self, step: &str) {
        self.inner.step_cached(step);
    }
    fn packaging_started(&self) {
        self.inner.packaging_started();
    }
    fn packaging_finished(&self, artifact: &lastmile_artifact::Packed) {
        self.inner.packaging_finished(artifact);
    }
    fn run_finished(&self, summary: &lastmile_pipeline::RunSummary) {
        self.inner.run_finished(summary);
    }
}

/// Prefixes an app's progress lines with its name.
#[derive(Debug)]
struct AppProgress {
    app: String,
    inner: Arc<dyn Progress>,
}

impl Progress for AppProgress {
    fn line(&self, text: &str) {
        self.inner.line(&format!("{}: {text}", self.app));
    }
    fn warn(&self, text: &str) {
        self.inner.warn(&format!("{}: {text}", self.app));
    }
}
