//! How statuses and streams are spelled in the database.

use crate::model::{LogStream, RunStatus, StepStatus};

/// Parses a stored run status.
pub(crate) fn parse_run_status(text: &str) -> Option<RunStatus> {
    Some(match text {
        "running" => RunStatus::Running,
        "succeeded" => RunStatus::Succeeded,
        "failed" => RunStatus::Failed,
        "cancelled" => RunStatus::Cancelled,
        "interrupted" => RunStatus::Interrupted,
        _ => return None,
    })
}

/// Text stored for a step status.
pub(crate) fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::TimedOut => "timedout",
        StepStatus::Cached => "cached",
        StepStatus::Skipped => "skipped",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Interrupted => "interrupted",
    }
}

/// Parses a stored step status.
pub(crate) fn parse_step_status(text: &str) -> Option<StepStatus> {
    Some(match text {
        "pending" => StepStatus::Pending,
        "running" => StepStatus::Running,
        "succeeded" => StepStatus::Succeeded,
        "failed" => StepStatus::Failed,
        "timedout" => StepStatus::TimedOut,
        "cached" => StepStatus::Cached,
        "skipped" => StepStatus::Skipped,
        "cancelled" => StepStatus::Cancelled,
        "interrupted" => StepStatus::Interrupted,
        _ => return None,
    })
}

/// Text stored for a log stream.
pub(crate) fn log_stream(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
        LogStream::System => "system",
    }
}

/// Parses a stored log stream.
pub(crate) fn parse_log_stream(text: &str) -> Option<LogStream> {
    Some(match text {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        "system" => LogStream::System,
        _ => return None,
    })
}
