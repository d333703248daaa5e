//! What an instance is doing right now.

use std::net::SocketAddr;

/// Life-cycle state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Spawned, waiting for the first successful health checks.
    Starting,
    /// Passing health checks; may receive traffic.
    Ready,
    /// Was ready, now failing `unhealthy_threshold` consecutive checks.
    Unhealthy,
    /// Crashed; waiting for backoff or for the replacement to become ready.
    Restarting,
    /// Crashed too often; no longer restarted until stopped and started again.
    CrashLoop,
    /// Being stopped.
    Stopping,
    /// Stopped (only seen in the last status before removal).
    Stopped,
}

/// Snapshot of one instance, as returned by [`crate::Supervisor::list`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceStatus {
    /// Unique name of the instance.
    pub instance_id: String,
    /// Release it runs.
    pub release_id: String,
    /// Version of that release.
    pub version: String,
    /// Index among its siblings.
    pub index: u32,
    /// `127.0.0.1:PORT` of the current process (changes on restart).
    pub addr: SocketAddr,
    /// Current state.
    pub state: InstanceState,
    /// Number of restarts after crashes.
    pub restarts: u32,
    /// Process id of the current process group's leader (also the group id, which lastmile
    /// signals), if one runs: the app itself when `sh -c` exec'd it, else the shell.
    pub pid: Option<u32>,
    /// Process id of the app's main process: the leader when the shell exec'd the command,
    /// else the shell's child (the one listening on the port when there are several).
    /// `None` when it cannot be told.
    pub main_pid: Option<u32>,
}
