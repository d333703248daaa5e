//! Rows the store hands out and takes in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// What a deployment record is: the strategy it ran with, a rollback, or
/// the restore of what served after a restart. Stored and shown as the
/// text of [`DeploymentKind::as_str`] (the spec's strategy names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentKind {
    /// `rolling`.
    Rolling,
    /// `blue-green`.
    BlueGreen,
    /// `recreate`.
    Recreate,
    /// `canary`.
    Canary,
    /// `rollback`: back to an earlier release.
    Rollback,
    /// `restore`: what served is started again after a restart (never a
    /// stored deployment; the engine drives it under this name).
    Restore,
}

impl DeploymentKind {
    /// Every kind, in the order above.
    pub const ALL: [DeploymentKind; 6] = [
        DeploymentKind::Rolling,
        DeploymentKind::BlueGreen,
        DeploymentKind::Recreate,
        DeploymentKind::Canary,
        DeploymentKind::Rollback,
        DeploymentKind::Restore,
    ];

    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Rolling => "rolling",
            DeploymentKind::BlueGreen => "blue-green",
            DeploymentKind::Recreate => "recreate",
            DeploymentKind::Canary => "canary",
            DeploymentKind::Rollback => "rollback",
            DeploymentKind::Restore => "restore",
        }
    }

    /// The kind of a deployment with the environment's strategy.
    pub fn of(strategy: &lastmile_spec::Strategy) -> DeploymentKind {
        match strategy {
            lastmile_spec::Strategy::Rolling { .. } => DeploymentKind::Rolling,
            lastmile_spec::Strategy::BlueGreen { .. } => DeploymentKind::BlueGreen,
            lastmile_spec::Strategy::Recreate => DeploymentKind::Recreate,
            lastmile_spec::Strategy::Canary(_) => DeploymentKind::Canary,
        }
    }

    /// How a deployment of this kind that put all traffic on its release
    /// is recorded: a rollback as what it is (for the audit log and the
    /// change-failure and recovery figures), anything else as succeeded.
    pub fn completed_status(self) -> DeploymentStatus {
        match self {
            DeploymentKind::Rollback => DeploymentStatus::RolledBack,
            _ => DeploymentStatus::Succeeded,
        }
    }
}

/// A phase, deployment kind or commit status text that this build does not
/// know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a {what}; use one of {known}")]
pub struct UnknownText {
    /// What was expected (`deployment kind`, `commit status`).
    pub what: &'static str,
    /// The text given.
    pub given: String,
    /// The texts that are known, comma-separated.
    pub known: String,
}

impl UnknownText {
    fn new(what: &'static str, given: &str, known: &[&str]) -> UnknownText {
        UnknownText {
            what,
            given: given.to_owned(),
            known: known.join(", "),
        }
    }
}

/// `Display`, `FromStr` (through `as_str` and `ALL`), `Serialize` and
/// `Deserialize` as the stored text, for a closed set of texts.
macro_rules! stored_as_text {
    ($type:ty, $what:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = UnknownText;

            fn from_str(text: &str) -> Result<$type, UnknownText> {
                <$type>::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            <$type>::ALL.iter().map(|value| value.as_str()).collect();
                        UnknownText::new($what, text, &known)
                    })
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

stored_as_text!(DeploymentKind, "deployment kind");

/// Where a deployment stands in its strategy's state machine: the phase
/// the engine wrote last. Stored and shown as text (`step-2`,
/// `batch-1-routed`, `switched`, …), as [`Phase`]'s `Display` writes it.
///
/// Text this build does not know is kept as [`Phase::Other`] rather than
/// refused: phases are added with strategies without a change of schema,
/// so a store written by another build may hold one, and one such row must
/// not make the whole deployment history unreadable. The engine treats an
/// unknown phase as undecided: a restart rolls that deployment back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `started`: the deployment was recorded; nothing moved yet.
    Started,
    /// `starting`: the new set is starting (blue-green, canary).
    Starting,
    /// `batch-N-starting`: a rolling batch's new instances are starting
    /// (N from 1).
    BatchStarting(usize),
    /// `batch-N-routed`: a rolling batch's weights were written.
    BatchRouted(usize),
    /// `dark`: the dark launch (mirrored copies, no user traffic).
    Dark,
    /// `step-N`: the canary's weight step N (from 1, as in the spec's
    /// `steps`).
    Step(usize),
    /// `step-N-paused`: the canary waits at its `pause` step N for
    /// `lastmile promote`.
    StepPaused(usize),
    /// `guard`: the analysis after promotion (named in `canary.decision`
    /// events; the deployment's own phase stays `switched`).
    Guard,
    /// `aborting`: the canary was aborted; traffic goes back to stable.
    Aborting,
    /// `switched`: all traffic was decided to be on the new release.
    Switched,
    /// `restore`: what served is started again after a restart.
    Restore,
    /// `succeeded`: ended, the new release serving.
    Succeeded,
    /// `failed`: ended, traffic on (or back on) the old release.
    Failed,
    /// `rolled-back`: a rollback ended, the earlier release serving.
    RolledBack,
    /// Text this build does not know, kept as it was.
    Other(String),
}

impl Phase {
    /// The phase a deployment ends in: its status's text.
    pub fn ended(status: DeploymentStatus) -> Option<Phase> {
        match status {
            DeploymentStatus::Running => None,
            DeploymentStatus::Succeeded => Some(Phase::Succeeded),
            DeploymentStatus::Failed => Some(Phase::Failed),
            DeploymentStatus::RolledBack => Some(Phase::RolledBack),
        }
    }

    /// Whether this is a canary phase a restart resumes (a weight step, a
    /// pause or the dark launch).
    pub fn is_canary_step(&self) -> bool {
        matches!(self, Phase::Step(_) | Phase::StepPaused(_) | Phase::Dark)
    }

    /// The weight or pause step (from 1) this phase is at, if any.
    pub fn step_number(&self) -> Option<usize> {
        match self {
            Phase::Step(number) | Phase::StepPaused(number) => Some(*number),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Started => formatter.write_str("started"),
            Phase::Starting => formatter.write_str("starting"),
            Phase::BatchStarting(round) => write!(formatter, "batch-{round}-starting"),
            Phase::BatchRouted(round) => write!(formatter, "batch-{round}-routed"),
            Phase::Dark => formatter.write_str("dark"),
            Phase::Step(number) => write!(formatter, "step-{number}"),
            Phase::StepPaused(number) => write!(formatter, "step-{number}-paused"),
            Phase::Guard => formatter.write_str("guard"),
            Phase::Aborting => formatter.write_str("aborting"),
            Phase::Switched => formatter.write_str("switched"),
            Phase::Restore => formatter.write_str("restore"),
            Phase::Succeeded => formatter.write_str(DeploymentStatus::Succeeded.as_str()),
            Phase::Failed => formatter.write_str(DeploymentStatus::Failed.as_str()),
            Phase::RolledBack => formatter.write_str(DeploymentStatus::RolledBack.as_str()),
            Phase::Other(text) => formatter.write_str(text),
        }
    }
}

/// A number as `Display` writes it (no sign, no leading zero), so the text
/// reads back exactly as it was.
fn canonical_number(text: &str) -> Option<usize> {
    let number: usize = text.parse().ok()?;
    (number.to_string() == text).then_some(number)
}

impl From<&str> for Phase {
    fn from(text: &str) -> Phase {
        let numbered = |prefix: &str, suffix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .and_then(canonical_number)
        };
        match text {
            "started" => Phase::Started,
            "starting" => Phase::Starting,
            "dark" => Phase::Dark,
            "guard" => Phase::Guard,
            "aborting" => Phase::Aborting,
            "switched" => Phase::Switched,
            "restore" => Phase::Restore,
            "succeeded" => Phase::Succeeded,
            "failed" => Phase::Failed,
            "rolled-back" => Phase::RolledBack,
            _ => {
                if let Some(round) = numbered("batch-", "-starting") {
                    Phase::BatchStarting(round)
                } else if let Some(round) = numbered("batch-", "-routed") {
                    Phase::BatchRouted(round)
                } else if let Some(number) = numbered("step-", "-paused") {
                    Phase::StepPaused(number)
                } else if let Some(number) = numbered("step-", "") {
                    Phase::Step(number)
                } else {
                    Phase::Other(text.to_owned())
                }
            }
        }
    }
}

impl FromStr for Phase {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Phase, Self::Err> {
        Ok(Phase::from(text))
    }
}

impl Serialize for Phase {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Phase {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Phase, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Phase::from(text.as_ref()))
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
    /// Its strategy, or `rollback` (stored as the kind's text).
    pub strategy: DeploymentKind,
    /// Where it stands.
    pub status: DeploymentStatus,
    /// The last phase written (the state machine's state).
    pub phase: Phase,
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
    pub phase: Phase,
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
    /// What became of it.
    pub status: CommitStatus,
    /// Run that built it.
    pub run_id: Option<RunId>,
    /// Release it became.
    pub release_id: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What became of a commit the watcher saw. Stored and shown as the text
/// of [`CommitStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitStatus {
    /// `seen`: recorded, not built yet.
    Seen,
    /// `running`: its pipeline runs.
    Running,
    /// `built`: its pipeline succeeded (a release, or nothing to release).
    Built,
    /// `failed`: its pipeline or its deployment failed with no release to
    /// go back to.
    Failed,
    /// `deployed`: its release serves.
    Deployed,
    /// `rolled-back`: its deployment failed and traffic went back to the
    /// release it would have replaced.
    RolledBack,
    /// `checked-out`: the head of a work tree that no watcher saw (shown,
    /// never stored).
    CheckedOut,
}

impl CommitStatus {
    /// Every status, in the order above.
    pub const ALL: [CommitStatus; 7] = [
        CommitStatus::Seen,
        CommitStatus::Running,
        CommitStatus::Built,
        CommitStatus::Failed,
        CommitStatus::Deployed,
        CommitStatus::RolledBack,
        CommitStatus::CheckedOut,
    ];

    /// The text stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitStatus::Seen => "seen",
            CommitStatus::Running => "running",
            CommitStatus::Built => "built",
            CommitStatus::Failed => "failed",
            CommitStatus::Deployed => "deployed",
            CommitStatus::RolledBack => "rolled-back",
            CommitStatus::CheckedOut => "checked-out",
        }
    }
}

stored_as_text!(CommitStatus, "commit status");
