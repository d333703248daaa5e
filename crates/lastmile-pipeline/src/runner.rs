//! `run_pipeline`: one run of `pipeline.steps`, from secrets to artifact.
//!
//! One task drives the run: it owns the DAG, every store write and every
//! reporter call. Each attempt of a step is a spawned task that only runs a
//! process and sends lines back over a bounded channel, so the store sees
//! one writer and a chatty step slows only itself.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lastmile_artifact::{BlobStore, PackageError, Packed};
use lastmile_spec::{Spec, Step};
use lastmile_store::{
    ArtifactRecord, CacheEntry, LogLine, LogStream, NewRun, RunId, RunStatus, StepOutcome,
    StepStatus, Store, StoreError,
};
use tokio::sync::{mpsc, watch};
use tokio::task::{self, JoinSet};
use tokio::time::{MissedTickBehavior, interval};

use crate::cache::{self, CacheError};
use crate::dag::{NodeState, Schedule};
use crate::mask::Masker;
use crate::process::{
    AttemptEnd, OutputSink, StepCommand, StepEvent, StepMessage, format_duration, run_attempt,
};
use crate::report::Reporter;
use crate::secrets::{self, SecretError};
use crate::workspace::{self, WorkspaceError};

/// Lines kept per step for the failure report.
const TAIL_LINES: usize = 20;
/// Buffered log lines of one step that trigger a store write.
const FLUSH_LINES: usize = 100;
/// Longest time a log line waits in memory before it is stored.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// Messages in flight from attempts to the runner before senders wait.
const CHANNEL_CAPACITY: usize = 1024;
/// Failed workspaces kept for inspection; older ones are deleted.
const KEPT_FAILED_WORKSPACES: usize = 3;

/// How to run the pipeline.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Steps running at once (at least 1).
    pub jobs: usize,
    /// Run in the spec directory itself instead of a fresh copy of the commit.
    pub in_place: bool,
    /// Run every step even when its cache key matches (the cache is still refreshed).
    pub no_cache: bool,
    /// The state directory (`.lastmile/`): store, blobs, workspaces.
    pub state_dir: PathBuf,
    /// Who started the run, for the event log (`local:<user>`).
    pub actor: String,
    /// Time between SIGTERM and SIGKILL when a step is stopped.
    pub kill_grace: Duration,
    /// The commit the source is, when the caller knows it better than git
    /// can tell (a tree the server wrote out of its mirror has no `.git`).
    pub commit: Option<String>,
}

impl RunOptions {
    /// Defaults: one job per core, a fresh workspace, cache on, 5 s grace.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            in_place: false,
            no_cache: false,
            state_dir,
            actor: "local".to_owned(),
            kill_grace: Duration::from_secs(5),
            commit: None,
        }
    }
}

/// What a run did, returned when it is over (also given to the reporter).
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's id in the store.
    pub run_id: RunId,
    /// Final status: `Succeeded`, `Failed` or `Cancelled`.
    pub status: RunStatus,
    /// The packed artifact, when the spec has one and the run succeeded.
    pub artifact: Option<Packed>,
    /// Every step in file order.
    pub steps: Vec<StepSummary>,
    /// Why the run failed, when it did.
    pub failure: Option<FailureReport>,
    /// Where the steps ran; kept after a failure, deleted after a success
    /// (unless the run was in place).
    pub workspace: PathBuf,
    /// Untracked files the clean workspace left out (relative to the spec
    /// directory; see [`crate::untracked_note`]).
    pub untracked: Vec<PathBuf>,
    /// Wall time of the whole run.
    pub duration: Duration,
}

/// One step's outcome in a [`RunSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSummary {
    /// Step name.
    pub name: String,
    /// Final status.
    pub status: StepStatus,
    /// Attempts made (0 when cached or skipped).
    pub attempts: u32,
    /// From the start of the first attempt to the end of the last.
    pub duration: Duration,
    /// Exit code of the last attempt, when it exited.
    pub exit_code: Option<i32>,
}

/// Most untracked files a run's `run.untracked_files` event names.
const UNTRACKED_RECORDED: usize = 100;

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    /// The step that failed (`artifact` when packaging failed).
    pub step: String,
    /// What happened, in words: `exited with code 1`, `timed out after 5s`.
    pub reason: String,
    /// The step's last output lines (up to 20), masked.
    pub last_lines: Vec<String>,
}

/// Errors that stop a run before it starts, or break the store under it.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A secret is missing or its file unreadable; nothing was run.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The workspace could not be prepared; nothing was run.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// A cache key could not be computed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Packing or unpacking files failed.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The state store failed; every step was stopped.
    #[error("the state store failed during the run: {0}")]
    Store(#[from] StoreError),
    /// The workspaces directory could not be created.
    #[error(
        "cannot create the workspaces directory {path}: {source}; check that the state \
         directory is writable or pass --in-place"
    )]
    WorkspacesDirectory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the pipeline of `spec` once; secrets come from the process
/// environment (then `secrets.file`). Every process it started is gone when
/// it returns, whatever the outcome; dropping the future kills them too.
pub async fn run_pipeline(
    spec: &Spec,
    spec_dir: &Path,
    store: &dyn Store,
    blobs: &BlobStore,
    options: &RunOptions,
    reporter: &dyn Reporter,
    cancel: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    let environment = |name: &str| std::env::var(name).ok();
    run_pipeline_with_environment(
        spec,
        spec_dir,
        store,
        blobs,
        options,
        &environment,
        reporter,
        cancel,
    )
    .await
}

/// Like [`run_pipeline`], reading secrets from `environment` instead of the
/// process environment (steps still inherit the process environment).
#[expect(
    clippy::too_many_arguments,
    reason = "the same arguments as run_pipeline plus one; a struct would only rename them"
)]
pub async fn run_pipeline_with_environment(
    spec: &Spec,
    spec_dir: &Path,
    store: &dyn Store,
    blobs: &BlobStore,
    options: &RunOptions,
    environment: &(dyn Fn(&str) -> Option<String> + Sync),
    reporter: &dyn Reporter,
    cancel: impl Future<Output = ()>,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    // Secrets first: a missing one fails before anything is created.
    let secret_values = secrets::resolve(spec_dir, spec, environment)?;
    let masker = Masker::new(secret_values.values().map(String::as_str));
    let spec_dir = std::path::absolute(spec_dir).unwrap_or_else(|_| spec_dir.to_path_buf());

    let (mut workspace, workspace_dir) = if options.in_place {
        (workspace::in_place(&spec_dir), None)
    } else {
        let parent = options.state_dir.join("workspaces");
        std::fs::create_dir_all(&parent).map_err(|source| PipelineError::WorkspacesDirectory {
            path: parent.clone(),
            source,
        })?;
        let destination = parent.join(format!("{:013}-{}", now_millis(), std::process::id()));
        (
            workspace::prepare(&spec_dir, &destination)?,
            Some(destination),
        )
    };

    // Untracked on purpose, and never to be added: lastmile's own state
    // and the secrets file.
    let state_dir =
        std::path::absolute(&options.state_dir).unwrap_or_else(|_| options.state_dir.clone());
    let secrets_file = spec.secrets.file.as_ref().map(|file| spec_dir.join(file));
    workspace.untracked.retain(|relative| {
        let path = spec_dir.join(relative);
        !path.starts_with(&state_dir) && secrets_file.as_ref() != Some(&path)
    });
    if let Some(note) = workspace::untracked_note(&workspace.untracked) {
        reporter.note(&note);
    }

    let step_names: Vec<String> = spec.pipeline.steps.iter().map(|s| s.name.clone()).collect();
    let run_id = match store.create_run(&NewRun {
        app: spec.app.clone(),
        spec_dir: spec_dir.display().to_string(),
        commit: options.commit.clone().or_else(|| workspace.commit.clone()),
        steps: step_names.clone(),
        actor: options.actor.clone(),
    }) {
        Ok(run_id) => run_id,
        Err(error) => {
            if let Some(directory) = &workspace_dir {
                let _ = std::fs::remove_dir_all(directory);
            }
            return Err(error.into());
        }
    };
    reporter.run_started(run_id, &spec.app, &step_names);
    if !workspace.untracked.is_empty() {
        let named: Vec<String> = workspace
            .untracked
            .iter()
            .take(UNTRACKED_RECORDED)
            .map(|path| path.display().to_string())
            .collect();
        // The event log is a record, not a condition of the run: a failure
        // to write it surfaces with the next write that matters.
        let _ = store.record_event(
            "run.untracked_files",
            &format!("run/{run_id}"),
            &options.actor,
            &serde_json::json!({ "count": workspace.untracked.len(), "files": named }),
        );
    }

    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    let (stop, _) = watch::channel(false);
    let mut run = ActiveRun {
        spec,
        spec_dir: &spec_dir,
        store,
        blobs,
        options,
        reporter,
        run_id,
        root: workspace.root.clone(),
        secret_values,
        masker,
        schedule: Schedule::new(&spec.pipeline.steps),
        steps: spec
            .pipeline
            .steps
            .iter()
            .map(|_| StepState::default())
            .collect(),
        sender,
        stop,
        tasks: JoinSet::new(),
        task_steps: HashMap::new(),
        ending: None,
        store_error: None,
    };
    run.drive(receiver, cancel).await;
    run.tasks.shutdown().await;

    let (status, artifact, failure) = run.conclude();
    let reason = failure
        .as_ref()
        .map(|failure| format!("step `{}` {}", failure.step, failure.reason))
        .or_else(|| (status == RunStatus::Cancelled).then(|| "cancelled".to_owned()));
    let artifact_id = artifact.as_ref().map(|artifact| artifact.id.as_str());
    if let Err(error) = store.finish_run(run_id, status, artifact_id, reason.as_deref()) {
        run.store_error.get_or_insert(error);
    }

    if let Some(directory) = &workspace_dir {
        keep_or_remove_workspace(directory, status == RunStatus::Succeeded);
    }
    let summary = RunSummary {
        run_id,
        status,
        artifact,
        steps: run.summaries(),
        failure,
        workspace: workspace.root,
        untracked: workspace.untracked,
        duration: started.elapsed(),
    };
    reporter.run_finished(&summary);
    match run.store_error {
        Some(error) => Err(error.into()),
        None => Ok(summary),
    }
}

/// Why the run is ending early.
enum Ending {
    Failed(FailureReport),
    Cancelled,
}

#[derive(Debug, Default)]
struct StepState {
    status: Option<StepStatus>,
    attempts: u32,
    exit_code: Option<i32>,
    first_started: Option<Instant>,
    duration: Duration,
    cache_key: Option<String>,
    tail: VecDeque<String>,
    unsaved_logs: Vec<LogLine>,
}

struct ActiveRun<'a> {
    spec: &'a Spec,
    spec_dir: &'a Path,
    store: &'a dyn Store,
    blobs: &'a BlobStore,
    options: &'a RunOptions,
    reporter: &'a dyn Reporter,
    run_id: RunId,
    root: PathBuf,
    secret_values: BTreeMap<String, String>,
    masker: Masker,
    schedule: Schedule,
    steps: Vec<StepState>,
    sender: mpsc::Sender<StepMessage>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// Which attempt each task runs, to account for a task that panicked.
    task_steps: HashMap<task::Id, (usize, u32)>,
    ending: Option<Ending>,
    store_error: Option<StoreError>,
}

impl ActiveRun<'_> {
    /// Starts and finishes steps until none runs and none can start.
    async fn drive(
        &mut self,
        mut receiver: mpsc::Receiver<StepMessage>,
        cancel: impl Future<Output = ()>,
    ) {
        let mut cancel = pin!(cancel);
        let mut cancel_seen = false;
        let mut flush = interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            self.start_ready_steps();
            if self.schedule.running() == 0 {
                break;
            }
            tokio::select! {
                Some(message) = receiver.recv() => self.handle(message),
                () = &mut cancel, if !cancel_seen => {
                    cancel_seen = true;
                    self.end(Ending::Cancelled);
                }
                Some(joined) = self.tasks.join_next_with_id() => self.task_ended(joined),
                _ = flush.tick() => self.flush_all(),
            }
        }
        self.flush_all();
    }

    fn start_ready_steps(&mut self) {
        let jobs = self.options.jobs.max(1);
        while self.ending.is_none() && self.schedule.running() < jobs {
            let Some(index) = self.schedule.next_ready() else {
                break;
            };
            self.schedule.mark_running(index);
            match self.restore_from_cache(index) {
                Ok(true) => self.finish_cached(index),
                Ok(false) => self.start_attempt(index, 1),
                Err(reason) => {
                    self.steps[index].first_started = Some(Instant::now());
                    self.finish_unsuccessful(index, StepStatus::Failed, reason);
                }
            }
        }
    }

    /// Computes the step's cache key; true when a hit was restored.
    fn restore_from_cache(&mut self, index: usize) -> Result<bool, String> {
        let step = &self.spec.pipeline.steps[index];
        let dependency_keys: Vec<Option<String>> = self
            .schedule
            .needs(index)
            .iter()
            .map(|&need| self.steps[need].cache_key.clone())
            .collect();
        let key = cache::step_key(self.spec_dir, step, &self.secret_values, &dependency_keys)
            .map_err(|error| format!("could not compute its cache key: {error}"))?;
        self.steps[index].cache_key.clone_from(&key);
        let Some(key) = key.filter(|_| !self.options.no_cache) else {
            return Ok(false);
        };
        let entry = match self.store.cache_get(&key) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(false),
            Err(error) => {
                self.broken(error);
                return Err("could not read the cache".to_owned());
            }
        };
        match entry.outputs_blob {
            Some(blob) => match lastmile_artifact::unpack(self.blobs, &blob, &self.root) {
                Ok(_) => Ok(true),
                Err(error) => {
                    self.log_system(
                        index,
                        1,
                        format!("cache hit, but its outputs could not be restored ({error}); running the step"),
                    );
                    Ok(false)
                }
            },
            // An entry without outputs cannot stand in for a step that has some.
            None => Ok(step.outputs.is_empty()),
        }
    }

    fn finish_cached(&mut self, index: usize) {
        let name = self.spec.pipeline.steps[index].name.clone();
        let state = &mut self.steps[index];
        state.status = Some(StepStatus::Cached);
        let outcome = StepOutcome {
            status: StepStatus::Cached,
            attempts: 0,
            exit_code: None,
            cache_key: state.cache_key.clone(),
        };
        if let Err(error) = self.store.finish_step(self.run_id, &name, &outcome) {
            self.broken(error);
        }
        self.reporter.step_cached(&name);
        self.schedule.mark_finished(index, NodeState::Done);
    }

    fn start_attempt(&mut self, index: usize, attempt: u32) {
        let step = &self.spec.pipeline.steps[index];
        let state = &mut self.steps[index];
        state.attempts = attempt;
        state.first_started.get_or_insert_with(Instant::now);
        state.tail.clear();
        if let Err(error) = self.store.start_step(self.run_id, &step.name, attempt) {
            self.broken(error);
            self.finish_unsuccessful(index, StepStatus::Failed, "was not started".to_owned());
            return;
        }
        self.reporter.step_started(&step.name, attempt);
        let command = self.command(step, attempt);
        let sink = OutputSink::new(self.sender.clone(), index, attempt);
        let stop = self.stop.subscribe();
        let handle = self.tasks.spawn(async move {
            let end = run_attempt(&command, stop, &sink).await;
            sink.finished(end).await;
        });
        self.task_steps.insert(handle.id(), (index, attempt));
    }

    /// A task that returned already sent `Finished`; one that panicked never
    /// will, so its attempt is finished here or the run would wait forever.
    fn task_ended(&mut self, joined: Result<(task::Id, ()), task::JoinError>) {
        match joined {
            Ok((id, ())) => {
                self.task_steps.remove(&id);
            }
            Err(error) => {
                if let Some((index, attempt)) = self.task_steps.remove(&error.id()) {
                    let end = AttemptEnd::SpawnFailed(std::io::Error::other(format!(
                        "the task running it failed ({error}); this is a lastmile bug"
                    )));
                    self.attempt_finished(index, attempt, end);
                }
            }
        }
    }

    fn command(&self, step: &Step, attempt: u32) -> StepCommand {
        let mut env: Vec<(String, String)> = step
            .env
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        for name in &step.secrets {
            if let Some(value) = self.secret_values.get(name) {
                env.push((name.clone(), value.clone()));
            }
        }
        env.extend([
            ("LASTMILE".to_owned(), "1".to_owned()),
            ("LASTMILE_RUN_ID".to_owned(), self.run_id.to_string()),
            ("LASTMILE_STEP".to_owned(), step.name.clone()),
            ("LASTMILE_ATTEMPT".to_owned(), attempt.to_string()),
            (
                "LASTMILE_WORKSPACE".to_owned(),
                self.root.display().to_string(),
            ),
        ]);
        StepCommand {
            run: step.run.clone(),
            cwd: match &step.workdir {
                Some(workdir) => self.root.join(workdir),
                None => self.root.clone(),
            },
            env,
            timeout: step.timeout,
            kill_grace: self.options.kill_grace,
        }
    }

    fn handle(&mut self, message: StepMessage) {
        let StepMessage {
            step: index,
            attempt,
            event,
        } = message;
        match event {
            // Only the attempt running now: a retry can start before an
            // earlier attempt's message is read (when its task panicked),
            // and that attempt's group must not replace the retry's.
            StepEvent::Started(process) if attempt == self.steps[index].attempts => {
                let name = &self.spec.pipeline.steps[index].name;
                if let Err(error) = self.store.record_step_process(self.run_id, name, process) {
                    self.broken(error);
                }
            }
            StepEvent::Started(_) => {}
            StepEvent::Line(stream, text) => self.record_line(index, attempt, stream, &text),
            StepEvent::Finished(end) => {
                self.flush(index);
                self.attempt_finished(index, attempt, end);
            }
        }
    }

    fn record_line(&mut self, index: usize, attempt: u32, stream: LogStream, text: &str) {
        let masked = self.masker.mask(text).into_owned();
        let name = &self.spec.pipeline.steps[index].name;
        self.reporter.step_output(name, stream, &masked);
        let state = &mut self.steps[index];
        if state.tail.len() == TAIL_LINES {
            state.tail.pop_front();
        }
        state.tail.push_back(masked.clone());
        state.unsaved_logs.push(LogLine {
            at: now_millis(),
            attempt,
            stream,
            text: masked,
        });
        if state.unsaved_logs.len() >= FLUSH_LINES {
            self.flush(index);
        }
    }

    fn log_system(&mut self, index: usize, attempt: u32, text: String) {
        self.record_line(index, attempt, LogStream::System, &text);
    }

    fn attempt_finished(&mut self, index: usize, attempt: u32, end: AttemptEnd) {
        let step = &self.spec.pipeline.steps[index];
        let (status, reason) = match end {
            AttemptEnd::Exited(exit) => {
                self.steps[index].exit_code = exit.code();
                if exit.success() {
                    self.finish_succeeded(index);
                    return;
                }
                let reason = match (exit.code(), exit.signal()) {
                    (Some(code), _) => format!("exited with code {code}"),
                    (None, Some(signal)) => format!("was killed by {}", signal_name(signal)),
                    (None, None) => "ended without an exit code".to_owned(),
                };
                (StepStatus::Failed, reason)
            }
            AttemptEnd::TimedOut(limit) => {
                self.steps[index].exit_code = None;
                (
                    StepStatus::TimedOut,
                    format!("timed out after {}", format_duration(limit)),
                )
            }
            AttemptEnd::SpawnFailed(error) => {
                self.steps[index].exit_code = None;
                let workdir = step.workdir.as_deref().unwrap_or(".");
                (
                    StepStatus::Failed,
                    format!(
                        "could not start `sh -c`: {error}; check that `sh` is installed and \
                         the workdir `{workdir}` exists in the workspace"
                    ),
                )
            }
            AttemptEnd::Stopped => {
                self.steps[index].exit_code = None;
                let reason = match self.ending {
                    Some(Ending::Cancelled) => "was cancelled",
                    _ => "was stopped because the run failed",
                };
                self.finish_unsuccessful(index, StepStatus::Cancelled, reason.to_owned());
                return;
            }
        };
        let max_attempts = step.retries.saturating_add(1);
        if attempt < max_attempts && self.ending.is_none() {
            let name = step.name.clone();
            self.log_system(
                index,
                attempt,
                format!(
                    "attempt {attempt} {reason}; retrying ({}/{max_attempts})",
                    attempt + 1
                ),
            );
            self.flush(index);
            self.reporter
                .step_retrying(&name, attempt + 1, max_attempts, &reason);
            self.start_attempt(index, attempt + 1);
        } else {
            self.finish_unsuccessful(index, status, reason);
        }
    }

    fn finish_succeeded(&mut self, index: usize) {
        if let Some(key) = self.steps[index].cache_key.clone() {
            self.save_to_cache(index, key);
        }
        let state = &mut self.steps[index];
        state.status = Some(StepStatus::Succeeded);
        state.duration = state
            .first_started
            .map(|at| at.elapsed())
            .unwrap_or_default();
        self.finish_step(index);
        self.schedule.mark_finished(index, NodeState::Done);
    }

    /// Packs the step's outputs and records the key; a failure here only
    /// costs a future cache hit, so it is logged, not fatal.
    fn save_to_cache(&mut self, index: usize, key: String) {
        let step = &self.spec.pipeline.steps[index];
        let outputs_blob = if step.outputs.is_empty() {
            None
        } else {
            match lastmile_artifact::pack(&self.root, &step.outputs, self.blobs) {
                Ok(packed) => Some(packed.id),
                Err(error) => {
                    let attempt = self.steps[index].attempts;
                    self.log_system(
                        index,
                        attempt,
                        format!("not cached: its outputs could not be packed ({error})"),
                    );
                    self.flush(index);
                    return;
                }
            }
        };
        let entry = CacheEntry {
            key,
            step: step.name.clone(),
            run_id: self.run_id,
            outputs_blob,
        };
        if let Err(error) = self.store.cache_put(&entry) {
            self.broken(error);
        }
    }

    fn finish_unsuccessful(&mut self, index: usize, status: StepStatus, reason: String) {
        let state = &mut self.steps[index];
        state.status = Some(status);
        state.duration = state
            .first_started
            .map(|at| at.elapsed())
            .unwrap_or_default();
        let last_lines = state.tail.iter().cloned().collect();
        self.finish_step(index);
        self.schedule.mark_finished(index, NodeState::Stopped);
        if status != StepStatus::Cancelled {
            self.end(Ending::Failed(FailureReport {
                step: self.spec.pipeline.steps[index].name.clone(),
                reason,
                last_lines,
            }));
        }
    }

    fn finish_step(&mut self, index: usize) {
        self.flush(index);
        let summary = self.summary(index);
        let outcome = StepOutcome {
            status: summary.status,
            attempts: summary.attempts,
            exit_code: summary.exit_code,
            cache_key: self.steps[index].cache_key.clone(),
        };
        if let Err(error) = self.store.finish_step(self.run_id, &summary.name, &outcome) {
            self.broken(error);
        }
        self.reporter.step_finished(&summary);
    }

    /// Ends the run early (first reason wins) and stops every running step.
    fn end(&mut self, ending: Ending) {
        if self.ending.is_none() {
            self.ending = Some(ending);
            // Receivers may all be gone (nothing running): nothing to stop then.
            let _ = self.stop.send(true);
        }
    }

    /// The store failed: remember the first error and stop the run.
    fn broken(&mut self, error: StoreError) {
        let reason = format!("could not be recorded: the state store failed ({error})");
        self.store_error.get_or_insert(error);
        self.end(Ending::Failed(FailureReport {
            step: "store".to_owned(),
            reason,
            last_lines: Vec::new(),
        }));
    }

    fn flush(&mut self, index: usize) {
        if self.steps[index].unsaved_logs.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.steps[index].unsaved_logs);
        let name = &self.spec.pipeline.steps[index].name;
        if let Err(error) = self.store.append_logs(self.run_id, name, &lines) {
            self.broken(error);
        }
    }

    fn flush_all(&mut self) {
        for index in 0..self.steps.len() {
            self.flush(index);
        }
    }

    /// Packs the artifact when every step succeeded; the run's final word.
    fn conclude(&mut self) -> (RunStatus, Option<Packed>, Option<FailureReport>) {
        match self.ending.take() {
            Some(Ending::Cancelled) => return (RunStatus::Cancelled, None, None),
            Some(Ending::Failed(failure)) => return (RunStatus::Failed, None, Some(failure)),
            None => {}
        }
        if !self.schedule.all_done() {
            // Validation rejects cycles and unknown needs, so this is a spec
            // that bypassed it; say so rather than claim success.
            let failure = FailureReport {
                step: "pipeline".to_owned(),
                reason: "has steps whose `needs` can never be met (a cycle?); run `lastmile check`"
                    .to_owned(),
                last_lines: Vec::new(),
            };
            return (RunStatus::Failed, None, Some(failure));
        }
        let Some(artifact) = &self.spec.artifact else {
            return (RunStatus::Succeeded, None, None);
        };
        self.reporter.packaging_started();
        let packed = match lastmile_artifact::pack(&self.root, &artifact.paths, self.blobs) {
            Ok(packed) => packed,
            Err(error) => {
                let failure = FailureReport {
                    step: "artifact".to_owned(),
                    reason: format!("could not be packed: {error}"),
                    last_lines: Vec::new(),
                };
                return (RunStatus::Failed, None, Some(failure));
            }
        };
        let record = ArtifactRecord {
            id: packed.id.clone(),
            size: packed.size,
            files: packed.files,
            app: self.spec.app.clone(),
            run_id: Some(self.run_id),
            created_at: now_millis(),
        };
        if let Err(error) = self.store.record_artifact(&record) {
            let failure = FailureReport {
                step: "artifact".to_owned(),
                reason: format!("could not be recorded: {error}"),
                last_lines: Vec::new(),
            };
            self.store_error.get_or_insert(error);
            return (RunStatus::Failed, None, Some(failure));
        }
        self.reporter.packaging_finished(&packed);
        (RunStatus::Succeeded, Some(packed), None)
    }

    fn summary(&self, index: usize) -> StepSummary {
        let state = &self.steps[index];
        StepSummary {
            name: self.spec.pipeline.steps[index].name.clone(),
            status: state.status.unwrap_or(StepStatus::Skipped),
            attempts: state.attempts,
            duration: state.duration,
            exit_code: state.exit_code,
        }
    }

    fn summaries(&self) -> Vec<StepSummary> {
        (0..self.steps.len())
            .map(|index| self.summary(index))
            .collect()
    }
}

fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(known) => known.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Deletes a successful run's workspace; keeps a failed one (marked by a
/// `<dir>.failed` file beside it) and prunes all but the newest few.
fn keep_or_remove_workspace(directory: &Path, succeeded: bool) {
    if succeeded {
        let _ = std::fs::remove_dir_all(directory);
        return;
    }
    let mut marker = directory.as_os_str().to_owned();
    marker.push(".failed");
    let _ = std::fs::write(&marker, b"");
    let Some(parent) = directory.parent() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    // Names start with a zero-padded timestamp, so name order is age order.
    let mut failed: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".failed").map(str::to_owned))
        .collect();
    failed.sort_unstable_by(|a, b| b.cmp(a));
    for name in failed.iter().skip(KEPT_FAILED_WORKSPACES) {
        let _ = std::fs::remove_dir_all(parent.join(name));
        let _ = std::fs::remove_file(parent.join(format!("{name}.failed")));
    }
}
