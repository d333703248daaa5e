//! Things that happen to instances, broadcast to subscribers.

use std::fmt;
use std::time::Duration;

/// One change in an instance's life, see [`crate::Supervisor::subscribe`].
#[derive(Debug, Clone)]
pub enum InstanceEvent {
    /// A process was spawned for the instance.
    Started {
        /// Instance name.
        instance_id: String,
        /// Process id of the group leader.
        pid: u32,
    },
    /// The instance passed its health checks.
    Ready {
        /// Instance name.
        instance_id: String,
    },
    /// The instance failed `unhealthy_threshold` consecutive health checks.
    Unhealthy {
        /// Instance name.
        instance_id: String,
        /// Why the last check failed.
        reason: String,
    },
    /// The process exited without being asked to; it will be restarted.
    Crashed {
        /// Instance name.
        instance_id: String,
        /// How it ended, e.g. `exit status 1`.
        status: String,
        /// Backoff before the restart.
        restart_in: Duration,
    },
    /// The instance crashed too often and is no longer restarted.
    CrashLoop {
        /// Instance name.
        instance_id: String,
        /// Crashes counted within the crash-loop window.
        crashes: u32,
    },
    /// The instance was stopped and removed.
    Stopped {
        /// Instance name.
        instance_id: String,
    },
}

impl InstanceEvent {
    /// The instance this event is about.
    pub fn instance_id(&self) -> &str {
        match self {
            Self::Started { instance_id, .. }
            | Self::Ready { instance_id }
            | Self::Unhealthy { instance_id, .. }
            | Self::Crashed { instance_id, .. }
            | Self::CrashLoop { instance_id, .. }
            | Self::Stopped { instance_id } => instance_id,
        }
    }
}

impl fmt::Display for InstanceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started { instance_id, pid } => {
                write!(f, "instance {instance_id} started as pid {pid}")
            }
            Self::Ready { instance_id } => write!(f, "instance {instance_id} is ready"),
            Self::Unhealthy {
                instance_id,
                reason,
            } => {
                write!(f, "instance {instance_id} is unhealthy: {reason}")
            }
            Self::Crashed {
                instance_id,
                status,
                restart_in,
            } => write!(
                f,
                "instance {instance_id} crashed: {status}; restarting in {}",
                fmt_duration(*restart_in)
            ),
            Self::CrashLoop {
                instance_id,
                crashes,
            } => write!(
                f,
                "instance {instance_id} is crash-looping ({crashes} crashes); \
                 not restarting it, read its log and start it again"
            ),
            Self::Stopped { instance_id } => write!(f, "instance {instance_id} stopped"),
        }
    }
}

/// Short human form of a duration: `30s`, `400ms`, else the `Debug` form.
pub(crate) fn fmt_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else if duration.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{duration:?}")
    }
}
