//! Rows the store hands out and takes in.

use serde::Serialize;

/// Run id: increasing integer, printed as `#12`.
pub type RunId = i64;

/// Milliseconds since the Unix epoch (UTC).
pub type UnixMillis = i64;

/// Outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Steps are executing.
    Running,
    /// Every step succeeded (and the artifact, if any, was packed).
    Succeeded,
    /// A step failed after its retries, or packaging failed.
    Failed,
    /// Stopped by the user (Ctrl-C / SIGTERM).
    Cancelled,
    /// The process that owned the run died; found at the next start.
    Interrupted,
}

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Waiting for its `needs`.
    Pending,
    /// Executing (some attempt).
    Running,
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit, killed, or could not start, after all retries.
    Failed,
    /// Killed after its timeout, after all retries.
    TimedOut,
    /// Skipped: its cache key matched an earlier success.
    Cached,
    /// Never started because a dependency failed or the run was cancelled.
    Skipped,
    /// Killed because the run was cancelled.
    Cancelled,
    /// The owning process died.
    Interrupted,
}

/// What `create_run` needs.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// `app` from the spec.
    pub app: String,
    /// Absolute directory holding `lastmile.yaml`.
    pub spec_dir: String,
    /// Git commit of the workspace source, when known.
    pub commit: Option<String>,
    /// Step names in file order (rows are created `pending`).
    pub steps: Vec<String>,
    /// Who started it (`local:<user>` for the CLI).
    pub actor: String,
}

/// A run row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Id.
    pub id: RunId,
    /// App name.
    pub app: String,
    /// Directory of the spec.
    pub spec_dir: String,
    /// Commit, if the source was a git checkout.
    pub commit: Option<String>,
    /// Status.
    pub status: RunStatus,
    /// Start time.
    pub started_at: UnixMillis,
    /// End time, once finished.
    pub finished_at: Option<UnixMillis>,
    /// Artifact packed by this run.
    pub artifact_id: Option<String>,
    /// Why it failed or was cancelled, in words.
    pub reason: Option<String>,
}

/// A step row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// Run it belongs to.
    pub run_id: RunId,
    /// Step name.
    pub name: String,
    /// Status.
    pub status: StepStatus,
    /// Attempts made (0 until started).
    pub attempts: u32,
    /// Exit code of the last attempt, if it exited.
    pub exit_code: Option<i32>,
    /// Start of the first attempt.
    pub started_at: Option<UnixMillis>,
    /// End of the last attempt.
    pub finished_at: Option<UnixMillis>,
    /// Cache key, when the step has `inputs`.
    pub cache_key: Option<String>,
}

/// How a step finished, for `finish_step`.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Final status (not `Pending`/`Running`).
    pub status: StepStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Exit code of the last attempt.
    pub exit_code: Option<i32>,
    /// Cache key, if any.
    pub cache_key: Option<String>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A line lastmile itself wrote (retry notices, timeouts).
    System,
}

/// One stored log line. Already masked: the store never sees a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// When it was read.
    pub at: UnixMillis,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Stream.
    pub stream: LogStream,
    /// The text, without the trailing newline.
    pub text: String,
}

/// An artifact row: a blob in the content-addressed store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArtifactRecord {
    /// blake3 hex of the uncompressed tar stream.
    pub id: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Number of files packed.
    pub files: u64,
    /// App name.
    pub app: String,
    /// Run that first produced it.
    pub run_id: Option<RunId>,
    /// First time it was stored.
    pub created_at: UnixMillis,
}

/// A cache entry: a step that succeeded with this key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheEntry {
    /// The key (blake3 hex of inputs, command, env).
    pub key: String,
    /// Step name.
    pub step: String,
    /// Run that produced it.
    pub run_id: RunId,
    /// Blob holding the step's `outputs`, if it declared any.
    pub outputs_blob: Option<String>,
}

/// An append-only event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing id.
    pub id: i64,
    /// When.
    pub at: UnixMillis,
    /// Dotted kind: `run.started`, `step.finished`, `artifact.stored`, …
    pub kind: String,
    /// What it is about: `run/12`, `run/12/step/build`, `artifact/<id>`.
    pub subject: String,
    /// Who caused it.
    pub actor: String,
    /// Details as JSON.
    pub data: serde_json::Value,
}
