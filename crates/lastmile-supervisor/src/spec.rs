//! What to run: one instance of one release.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything needed to start (and restart) one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Unique name of the instance on this host (also its log file name).
    pub instance_id: String,
    /// Release the instance runs (exported as `LASTMILE_RELEASE`).
    pub release_id: String,
    /// Version of that release (exported as `LASTMILE_VERSION`).
    pub version: String,
    /// Index of the instance among its siblings (exported as `LASTMILE_INSTANCE`).
    pub index: u32,
    /// Shell command, run as `sh -c command`.
    pub command: String,
    /// Extra environment; cannot override `PORT` or the `LASTMILE_*` variables.
    pub env: BTreeMap<String, String>,
    /// Working directory of the command.
    pub workdir: PathBuf,
    /// How readiness and health are checked.
    pub health: HealthSpec,
    /// How the instance is stopped.
    pub stop: StopSpec,
}

/// HTTP health check settings.
#[derive(Debug, Clone)]
pub struct HealthSpec {
    /// Path requested with `GET` (2xx or 3xx means healthy).
    pub path: String,
    /// Time between checks, while starting and once ready; the first check comes one
    /// interval after the spawn.
    pub interval: Duration,
    /// Time limit of one check.
    pub timeout: Duration,
    /// Consecutive successes needed to become ready.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a ready instance unhealthy.
    pub unhealthy_threshold: u32,
    /// Time allowed from spawn to ready.
    pub start_timeout: Duration,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            path: "/healthz".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// Graceful stop settings.
#[derive(Debug, Clone)]
pub struct StopSpec {
    /// Signal sent to the process group first.
    pub signal: nix::sys::signal::Signal,
    /// Time the group gets to exit before it is sent `SIGKILL`.
    pub grace: Duration,
}

impl Default for StopSpec {
    fn default() -> Self {
        Self {
            signal: nix::sys::signal::Signal::SIGTERM,
            grace: Duration::from_secs(10),
        }
    }
}
