//! The validated `lastmile.yaml` model: what every other crate reads.
//!
//! These types hold values that already passed validation (durations parsed,
//! names unique, `needs` resolved, the DAG acyclic). Parsing and diagnostics
//! live beside them; nothing here knows about YAML.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

/// A whole `lastmile.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Application name: lowercase letters, digits and `-`, 1..=63 chars.
    pub app: String,
    /// The build/test/package DAG.
    pub pipeline: Pipeline,
    /// What a successful run packs into the artifact store.
    pub artifact: Option<Artifact>,
    /// How a release runs as a long-lived process.
    pub service: Option<Service>,
    /// Where to secret values come from besides the process environment.
    pub secrets: Secrets,
    /// Named deploy targets, in file order.
    pub environments: Vec<Environment>,
    /// Sections whose semantics arrive in later versions (`flags`, `monitor`,
    /// `drills`, `hosts`): present in the file but not yet acted upon. A
    /// command that needs one says so plainly instead of ignoring it.
    pub reserved_sections: Vec<ReservedSection>,
}

/// `pipeline:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// Steps in file order; `needs` refer to other steps by name.
    pub steps: Vec<Step>,
}

/// One `pipeline.steps[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Unique within the pipeline: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Shell command, run by `sh -c` (the text reaches the shell as the step's
    /// own program, never interpolated into another command line).
    pub run: String,
    /// Names of steps that must succeed before this one starts.
    pub needs: Vec<String>,
    /// Extra environment variables for the step.
    pub env: BTreeMap<String, String>,
    /// Kill the step (whole process group) after this long. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Extra attempts after a failure (0 = run once).
    pub retries: u32,
    /// Globs (relative to the spec directory) whose contents key the cache.
    /// Empty: the step is never cached.
    pub inputs: Vec<String>,
    /// Globs (relative to the workspace) saved after success and restored on a
    /// cache hit, so later steps see the same files whether or not it ran.
    pub outputs: Vec<String>,
    /// Names of secrets injected as environment variables and masked in logs.
    pub secrets: Vec<String>,
    /// Working directory relative to the workspace root (default `.`).
    pub workdir: Option<String>,
}

/// `artifact:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    /// Files, directories or globs (relative to the workspace) to pack.
    pub paths: Vec<String>,
}

/// `secrets:`: where secret values come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Secrets {
    /// A dotenv-style file (`NAME=value` lines), relative to the spec
    /// directory or absolute. The process environment wins over the file.
    pub file: Option<String>,
}

/// `service:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Command that starts one instance; it must listen on `$PORT`.
    pub run: String,
    /// Extra environment for every instance.
    pub env: BTreeMap<String, String>,
    /// Readiness and liveness check.
    pub health: HealthCheck,
    /// How an instance is stopped.
    pub stop: StopPolicy,
}

/// `service.health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// HTTP path probed with GET; a 2xx or 3xx answer is healthy.
    pub path: String,
    /// Time between probes (default 1s).
    pub interval: Duration,
    /// Per-probe timeout (default 2s).
    pub timeout: Duration,
    /// Consecutive successes to become ready (default 1).
    pub healthy_threshold: u32,
    /// Consecutive failures to become unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// Give up waiting for readiness after this long (default 60s).
    pub start_timeout: Duration,
}

/// `service.stop`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopPolicy {
    /// Signal sent to the process group first (default `SIGTERM`).
    pub signal: StopSignal,
    /// Time allowed after the signal before `SIGKILL` (default 30s).
    pub grace: Duration,
}

/// Signals a service may ask to be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    /// SIGTERM.
    Sigterm,
    /// SIGINT.
    Sigint,
    /// SIGQUIT.
    Sigquit,
    /// SIGHUP.
    Sighup,
    /// SIGUSR1.
    Sigusr1,
    /// SIGUSR2.
    Sigusr2,
}

/// One `environments.<name>` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// The map key: `staging`, `production`, …
    pub name: String,
    /// Instances per host (default 1).
    pub instances: u32,
    /// How a new release replaces the old one.
    pub strategy: Strategy,
    /// Conditions before a deployment may start or proceed.
    pub gates: Gates,
    /// Where the router accepts this environment's traffic.
    pub route: Option<Route>,
    /// Promotion from the previous environment: automatic or by hand.
    pub promote: Promote,
}

/// `environments.<name>.strategy` with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Strategy {
    /// Replace instances in batches.
    Rolling {
        /// Instances replaced per batch (default 1).
        batch: u32,
        /// Extra instances allowed above `instances` during the roll (default 1).
        max_surge: u32,
    },
    /// Start the full new set, verify it, switch traffic at once.
    BlueGreen {
        /// How long the old set stays warm for an instant rollback (default 10m).
        rollback_window: Duration,
    },
    /// Stop the old set, then start the new one (brief downtime by design).
    Recreate,
    /// Shift traffic by weight steps with analysis between them.
    Canary {
        /// Percent of traffic per step, ascending, last is 100.
        steps: Vec<f64>,
        /// Minimum time at each step before a decision (default 30s).
        step_duration: Duration,
        /// Minimum canary requests at each step before a decision (default 100).
        min_requests: u64,
        /// Give up a step that never gets enough evidence (default 10m).
        step_deadline: Duration,
        /// Abort when the canary's error rate exceeds stable's by this many
        /// percentage points (default 1.0).
        max_error_rate_increase: f64,
        /// Abort when canary p99 latency exceeds stable's by this factor
        /// (default 1.5).
        max_latency_ratio: f64,
    },
}

/// `environments.<name>.gates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Gates {
    /// A person must approve before traffic moves (`approval: required`).
    pub approval_required: bool,
    /// HTTP checks against the new release before it gets traffic.
    pub verify: Vec<VerifyCheck>,
}

/// One `gates.verify[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyCheck {
    /// Path requested on a new instance.
    pub path: String,
    /// Expected status (default 200).
    pub status: u16,
    /// Substring the body must contain, if set.
    pub body_contains: Option<String>,
}

/// `environments.<name>.route`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Address the router listens on.
    pub listen: SocketAddr,
    /// `Host` header to match; `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match (default `/`).
    pub path_prefix: String,
}

/// `environments.<name>.promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Promote {
    /// Promote as soon as the previous environment is healthy.
    Auto,
    /// Wait for `lastmile promote`.
    Manual,
}

/// A top-level section that later versions give meaning to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReservedSection {
    /// `flags`, `monitor`, `drills` or `hosts`.
    pub name: String,
    /// 1-based line of the section key, for messages.
    pub line: usize,
}

impl Spec {
    /// The step with this name, if any.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.pipeline.steps.iter().find(|step| step.name == name)
    }

    /// The reserved section with this name, if the file has one.
    pub fn reserved(&self, name: &str) -> Option<&ReservedSection> {
        self.reserved_sections
            .iter()
            .find(|section| section.name == name)
    }
}
