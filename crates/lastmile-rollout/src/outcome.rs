//! What a deployment or rollback ended as, for the API and the CLI.

use serde::Serialize;

use lastmile_store::DeploymentStatus;

/// The end of one deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentOutcome {
    /// The deployment's id in the store.
    pub deployment: i64,
    /// The environment.
    pub environment: String,
    /// How it ended.
    pub status: DeploymentStatus,
    /// What the environment served before.
    pub from_release: Option<String>,
    /// What it was moved to.
    pub to_release: String,
    /// Wall time from start to end.
    pub duration_ms: u64,
    /// Time from start until all traffic was on the new release (the rest
    /// is draining and stopping the old one).
    pub switched_after_ms: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The failing instance's last output lines, when one failed to start.
    pub last_lines: Vec<String>,
}
