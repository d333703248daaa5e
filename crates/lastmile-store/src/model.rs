//! Rows the store hands out and takes in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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

impl RunStatus {
    /// The text stored and shown (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }
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

/// A release: an artifact plus the spec it was built with, with a version
/// label. Its id is content-addressed (blake3 of both), so building the same
/// thing twice gives the same release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// blake3 hex of the artifact id and the spec source.
    pub id: String,
    /// App name.
    pub app: String,
    /// `v1`, `v2`, … in creation order.
    pub version: String,
    /// The artifact it unpacks.
    pub artifact_id: String,
    /// Run that built it.
    pub run_id: Option<RunId>,
    /// The `lastmile.yaml` it was built with (service and health settings).
    #[serde(skip)]
    pub spec_source: String,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// What an environment serves, as last written by the engine. Weights are
/// written here *before* the router is told, so a restarted controller
/// restores exactly what was (or was about to be) serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentState {
    /// Environment name.
    pub name: String,
    /// The release that has (or is taking) all traffic.
    pub current_release: Option<String>,
    /// The release it replaced: the default rollback target.
    pub previous_release: Option<String>,
    /// Release id → weight, as routed.
    pub weights: Vec<(String, u32)>,
    /// Until when the previous release's instances are kept running for an
    /// instant rollback (blue-green), if they are.
    pub warm_until: Option<UnixMillis>,
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentStatus {
    /// Being driven.
    Running,
    /// The new release serves all traffic.
    Succeeded,
    /// It failed; traffic stayed on (or went back to) the old release.
    Failed,
    /// A rollback: traffic went back to an earlier release.
    RolledBack,
}

impl DeploymentStatus {
    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Succeeded => "succeeded",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::RolledBack => "rolled-back",
        }
    }

    /// Parses `as_str`'s text.
    pub fn parse(text: &str) -> Option<DeploymentStatus> {
        Some(match text {
            "running" => DeploymentStatus::Running,
            "succeeded" => DeploymentStatus::Succeeded,
            "failed" => DeploymentStatus::Failed,
            "rolled-back" => DeploymentStatus::RolledBack,
            _ => return None,
        })
    }
}

/// A deployment: one environment moving from one release to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Increasing id.
    pub id: i64,
    /// The environment.
    pub environment: String,
    /// What it served before.
    pub from_release: Option<String>,
    /// What it moves to.
    pub to_release: String,
    /// `rolling`, `blue-green`, `recreate`, `rollback`.
    pub strategy: String,
    /// Where it stands.
    pub status: DeploymentStatus,
    /// The last phase written (the state machine's state).
    pub phase: String,
    /// When it began.
    pub started_at: UnixMillis,
    /// When it ended.
    pub finished_at: Option<UnixMillis>,
    /// Why it failed, in the engine's words (`canary aborted: error rate …`,
    /// `instance … did not become ready: …`, `aborted by \`lastmile abort\``).
    pub reason: Option<String>,
    /// The last canary analysis before the end (the `analysis` of its last
    /// `canary.decision`: both sides' requests, errors, p95/p99 and the
    /// verdicts), kept as the engine wrote it. `None` for strategies without
    /// analysis.
    pub analysis: Option<serde_json::Value>,
}

/// One recorded transition of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentStep {
    /// Order within the deployment, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: UnixMillis,
    /// The phase entered.
    pub phase: String,
    /// Details (instances, weights).
    pub detail: serde_json::Value,
}

/// A runtime override of a flag, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagOverrideRecord {
    /// Flag key.
    pub key: String,
    /// The override (enabled, default, rollout), as JSON.
    pub value: serde_json::Value,
    /// Who set it.
    pub actor: String,
    /// When.
    pub updated_at: UnixMillis,
}

/// What an API token may do. Ordered: `Viewer < Deployer < Admin`, so a
/// check is `role >= Role::Deployer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads state: runs, releases, deployments, logs.
    Viewer,
    /// Also builds, deploys and rolls back.
    Deployer,
    /// Also manages tokens and secrets.
    Admin,
}

impl Role {
    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A role name that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a role; use one of viewer, deployer, admin")]
pub struct UnknownRole {
    /// The text given.
    pub given: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "deployer" => Ok(Role::Deployer),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole {
                given: text.to_owned(),
            }),
        }
    }
}

/// An API token as stored. Holds neither the token nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Increasing id.
    pub id: i64,
    /// Unique name, chosen by whoever created it.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub created_at: UnixMillis,
    /// Who created it.
    pub created_by: String,
    /// Last time it authenticated a request (to the minute).
    pub last_used_at: Option<UnixMillis>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<UnixMillis>,
}

/// A sealed secret as stored: `(nonce, ciphertext)`, as `SecretBox::seal`
/// returns them.
pub type SealedSecret = (Vec<u8>, Vec<u8>);

/// A secret's metadata. Never holds the value, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRecord {
    /// App it belongs to.
    pub app: String,
    /// Its name (the environment variable it becomes).
    pub name: String,
    /// When it was last set.
    pub updated_at: UnixMillis,
    /// Who last set it.
    pub updated_by: String,
}

/// A commit the watcher saw, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitRecord {
    /// App whose repository it is in.
    pub app: String,
    /// Full commit hash.
    pub sha: String,
    /// Branch it was seen on.
    pub branch: String,
    /// Commit time, from git.
    pub committed_at: UnixMillis,
    /// Author, from git.
    pub author: String,
    /// First line of the message.
    pub subject: String,
    /// When lastmile first saw it.
    pub seen_at: UnixMillis,
    /// How it was seen: `poll` or `webhook`.
    pub source: String,
    /// `seen`, `running`, `built`, `failed`, `deployed` or `rolled-back`.
    pub status: String,
    /// Run that built it.
    pub run_id: Option<RunId>,
    /// Release it became.
    pub release_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}
