//! Tuning knobs shared by every instance of one supervisor.

use std::time::Duration;

/// Restart, crash-loop and log-rotation settings for a [`crate::Supervisor`].
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Delay before the first restart after a crash; doubles per crash within the window.
    pub restart_backoff_initial: Duration,
    /// Upper bound of the restart delay.
    pub restart_backoff_max: Duration,
    /// This many crashes within `crash_loop_window` put the instance into `CrashLoop`.
    pub crash_loop_restarts: u32,
    /// Window over which crashes are counted for crash-loop detection and backoff.
    pub crash_loop_window: Duration,
    /// Size at which `<id>.log` is rotated.
    pub log_max_bytes: u64,
    /// Number of rotated files kept (`<id>.log.1` is the newest).
    pub log_keep: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff_initial: Duration::from_millis(200),
            restart_backoff_max: Duration::from_secs(10),
            crash_loop_restarts: 5,
            crash_loop_window: Duration::from_secs(60),
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 3,
        }
    }
}
