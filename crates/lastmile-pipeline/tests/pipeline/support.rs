//! The fixture every test builds on: a spec directory, a state directory with
//! a real SQLite store, and a reporter that remembers what it was told.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use lastmile_artifact::{BlobStore, Packed};
use lastmile_pipeline::{
    PipelineError, Reporter, RunOptions, RunSummary, StepSummary, run_pipeline_with_environment,
};
use lastmile_spec::{Artifact, Pipeline, Secrets, Spec, Step};
use lastmile_store::{LogStream, RunId, SqliteStore, StepRecord, Store};
use tempfile::TempDir;

/// A step running `run`, with no needs, retries, cache or limits.
pub(crate) fn step(name: &str, run: &str) -> Step {
    Step {
        name: name.to_owned(),
        run: run.to_owned(),
        needs: Vec::new(),
        env: BTreeMap::new(),
        timeout: None,
        retries: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
        secrets: Vec::new(),
        workdir: None,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

/// Builder methods so a step reads like its YAML.
pub(crate) trait StepExt {
    fn needs(self, names: &[&str]) -> Self;
    fn timeout(self, limit: Duration) -> Self;
    fn retries(self, retries: u32) -> Self;
    fn inputs(self, globs: &[&str]) -> Self;
    fn outputs(self, globs: &[&str]) -> Self;
    fn secrets(self, names: &[&str]) -> Self;
    fn env(self, name: &str, value: &str) -> Self;
    fn workdir(self, directory: &str) -> Self;
}

impl StepExt for Step {
    fn needs(mut self, names: &[&str]) -> Self {
        self.needs = strings(names);
        self
    }
    fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
    fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    fn inputs(mut self, globs: &[&str]) -> Self {
        self.inputs = strings(globs);
        self
    }
    fn outputs(mut self, globs: &[&str]) -> Self {
        self.outputs = strings(globs);
        self
    }
    fn secrets(mut self, names: &[&str]) -> Self {
        self.secrets = strings(names);
        self
    }
    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }
    fn workdir(mut self, directory: &str) -> Self {
        self.workdir = Some(directory.to_owned());
        self
    }
}

/// A spec directory, a state directory and the options runs use.
pub(crate) struct Fixture {
    pub(crate) spec_dir: TempDir,
    pub(crate) state_dir: TempDir,
    pub(crate) store: SqliteStore,
    pub(crate) blobs: BlobStore,
    pub(crate) options: RunOptions,
    secrets: BTreeMap<String, String>,
    artifact: Option<Artifact>,
}

/// What one run returned and what its reporter saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) summary: RunSummary,
    pub(crate) reporter: CollectingReporter,
}

impl Fixture {
    /// In place (no git needed), one job, a short kill grace.
    pub(crate) fn new() -> Self {
        let spec_dir = tempfile::tempdir().expect("spec temp dir");
        let state_dir = tempfile::tempdir().expect("state temp dir");
        let (store, _report) = SqliteStore::open(state_dir.path()).expect("open the store");
        let blobs = BlobStore::open(state_dir.path()).expect("open the blob store");
        let mut options = RunOptions::new(state_dir.path().to_path_buf());
        options.jobs = 1;
        options.in_place = true;
        options.kill_grace = Duration::from_secs(2);
        options.actor = "test".to_owned();
        Self {
            spec_dir,
            state_dir,
            store,
            blobs,
            options,
            secrets: BTreeMap::new(),
            artifact: None,
        }
    }

    pub(crate) fn jobs(mut self, jobs: usize) -> Self {
        self.options.jobs = jobs;
        self
    }

    pub(crate) fn kill_grace(mut self, grace: Duration) -> Self {
        self.options.kill_grace = grace;
        self
    }

    /// Runs in a fresh workspace of the spec directory's git commit.
    pub(crate) fn clean_workspace(mut self) -> Self {
        self.options.in_place = false;
        self
    }

    pub(crate) fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_owned(), value.to_owned());
        self
    }

    pub(crate) fn artifact(mut self, paths: &[&str]) -> Self {
        self.artifact = Some(Artifact {
            paths: strings(paths),
        });
        self
    }

    /// The same fixture with `no_cache` set, for one more run.
    pub(crate) fn no_cache(&self) -> NoCache<'_> {
        NoCache(self)
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.spec_dir.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, contents: &str) {
        std::fs::write(self.path(relative), contents).expect("write a spec-dir file");
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative))
            .unwrap_or_else(|error| panic!("read {relative}: {error}"))
    }

    /// The process group id a step wrote with `echo $$ > file`.
    pub(crate) fn pgid(&self, relative: &str) -> i32 {
        self.read(relative)
            .trim()
            .parse()
            .expect("a pid in the file")
    }

    fn spec(&self, steps: Vec<Step>) -> Spec {
        Spec {
            app: "test-app".to_owned(),
            pipeline: Pipeline { steps },
            artifact: self.artifact.clone(),
            service: None,
            secrets: Secrets::default(),
            environments: Vec::new(),
            flags: Vec::new(),
            segments: Vec::new(),
            reserved_sections: Vec::new(),
        }
    }

    pub(crate) async fn try_run_with(
        &self,
        steps: Vec<Step>,
        options: &RunOptions,
        cancel: impl Future<Output = ()>,
    ) -> Result<Outcome, PipelineError> {
        let spec = self.spec(steps);
        let reporter = CollectingReporter::default();
        let environment = |name: &str| self.secrets.get(name).cloned();
        let summary = run_pipeline_with_environment(
            &spec,
            self.spec_dir.path(),
            &self.store,
            &self.blobs,
            options,
            &environment,
            &reporter,
            cancel,
        )
        .await?;
        assert_eq!(
            reporter.events_starting_with("run finished").len(),
            1,
            "the reporter hears the end exactly once"
        );
        Ok(Outcome { summary, reporter })
    }

    /// Runs with any reporter; the summary only.
    pub(crate) async fn run_reporting_to(
        &self,
        steps: Vec<Step>,
        reporter: &dyn Reporter,
    ) -> RunSummary {
        let spec = self.spec(steps);
        let environment = |name: &str| self.secrets.get(name).cloned();
        run_pipeline_with_environment(
            &spec,
            self.spec_dir.path(),
            &self.store,
            &self.blobs,
            &self.options,
            &environment,
            reporter,
            std::future::pending(),
        )
        .await
        .expect("the run completes")
    }

    pub(crate) async fn try_run(&self, steps: Vec<Step>) -> Result<Outcome, PipelineError> {
        self.try_run_with(steps, &self.options, std::future::pending())
            .await
    }

    pub(crate) async fn run(&self, steps: Vec<Step>) -> Outcome {
        self.try_run(steps).await.expect("the run completes")
    }

    /// Runs until `cancel` resolves (then the run is cancelled).
    pub(crate) async fn run_until(
        &self,
        steps: Vec<Step>,
        cancel: impl Future<Output = ()>,
    ) -> Outcome {
        self.try_run_with(steps, &self.options, cancel)
            .await
            .expect("the run completes")
    }

    /// Stored log lines of one step, optionally of one stream.
    pub(crate) fn logs(&self, run: RunId, step: &str, stream: Option<LogStream>) -> Vec<String> {
        self.store
            .read_logs(run, Some(step))
            .expect("read logs")
            .into_iter()
            .filter(|(_, line)| stream.is_none_or(|wanted| line.stream == wanted))
            .filter(|(_, line)| stream.is_some() || line.stream != LogStream::System)
            .map(|(_, line)| line.text)
            .collect()
    }

    /// Runs git in the spec directory; its stdout on success.
    pub(crate) fn git(&self, arguments: &[&str]) -> Result<String, String> {
        let output = std::process::Command::new("git")
            .args(arguments)
            .current_dir(self.spec_dir.path())
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    pub(crate) fn store_steps(&self, run: RunId) -> Vec<StepRecord> {
        self.store.list_steps(run).expect("list steps")
    }
}

/// [`Fixture`] with the cache bypassed.
pub(crate) struct NoCache<'a>(&'a Fixture);

impl NoCache<'_> {
    pub(crate) async fn run(&self, steps: Vec<Step>) -> Outcome {
        let mut options = self.0.options.clone();
        options.no_cache = true;
        self.0
            .try_run_with(steps, &options, std::future::pending())
            .await
            .expect("the run completes")
    }
}

/// Remembers every call as a short line (`output build: hello`).
#[derive(Debug, Default)]
pub(crate) struct CollectingReporter {
    events: Mutex<Vec<String>>,
}

impl CollectingReporter {
    fn push(&self, event: String) {
        self.events
            .lock()
            .expect("no test panics holding it")
            .push(event);
    }

    pub(crate) fn events(&self) -> Vec<String> {
        self.events
            .lock()
            .expect("no test panics holding it")
            .clone()
    }

    pub(crate) fn events_starting_with(&self, prefix: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|event| event.starts_with(prefix))
            .collect()
    }

    /// Output lines (stdout and stderr) the reporter got for one step.
    pub(crate) fn output_lines(&self, step: &str) -> Vec<String> {
        let prefix = format!("output {step}: ");
        self.events()
            .into_iter()
            .filter_map(|event| event.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

impl Reporter for CollectingReporter {
    fn run_started(&self, run: RunId, app: &str, steps: &[String]) {
        self.push(format!("run started {run} {app} {}", steps.join(",")));
    }
    fn step_started(&self, step: &str, attempt: u32) {
        self.push(format!("started {step} {attempt}"));
    }
    fn step_retrying(&self, step: &str, attempt: u32, max_attempts: u32, _reason: &str) {
        self.push(format!("retrying {step} {attempt}/{max_attempts}"));
    }
    fn step_output(&self, step: &str, stream: LogStream, line: &str) {
        match stream {
            LogStream::System => self.push(format!("system {step}: {line}")),
            LogStream::Stdout | LogStream::Stderr => self.push(format!("output {step}: {line}")),
        }
    }
    fn step_finished(&self, step: &StepSummary) {
        self.push(format!("finished {} {:?}", step.name, step.status));
    }
    fn step_cached(&self, step: &str) {
        self.push(format!("cached {step}"));
    }
    fn packaging_started(&self) {
        self.push("packaging".to_owned());
    }
    fn packaging_finished(&self, artifact: &Packed) {
        self.push(format!("packed {}", artifact.id));
    }
    fn run_finished(&self, summary: &RunSummary) {
        self.push(format!("run finished {:?}", summary.status));
    }
}

/// Live (non-zombie) processes whose process group is `group`, from /proc.
pub(crate) fn live_members_of_group(group: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(after_name) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.len() > 2
            && fields[2] == group.to_string()
            && fields[0] != "Z"
            && fields[0] != "X"
        {
            members.push(pid);
        }
    }
    members
}

/// Waits until `path` exists, for at most 10 s.
pub(crate) async fn wait_for_file(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A writer whose bytes the test can read afterwards.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBuffer(std::sync::Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// What was written, with every duration (`12ms`, `1.2s`) replaced by `<t>`.
    pub(crate) fn text_without_durations(&self) -> String {
        let bytes = self.0.lock().expect("no test panics holding it").clone();
        let text = String::from_utf8(bytes).expect("reporters write UTF-8");
        let mut out = String::new();
        for word in text.split_inclusive([' ', '\n', ':']) {
            let trimmed = word.trim_end_matches([' ', '\n', ':']);
            let number = trimmed.trim_end_matches("ms").trim_end_matches('s');
            let is_duration = trimmed != number
                && !number.is_empty()
                && number.chars().all(|c| c.is_ascii_digit() || c == '.');
            if is_duration {
                out.push_str("<t>");
                out.push_str(&word[trimmed.len()..]);
            } else {
                out.push_str(word);
            }
        }
        out
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("no test panics holding it")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
